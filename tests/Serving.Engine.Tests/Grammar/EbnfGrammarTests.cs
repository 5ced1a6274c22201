using Serving.Engine.Grammar;

namespace Serving.Engine.Tests.Grammar;

/// GBNF grammars (structured_outputs.grammar) compile into automata that accept exactly their language: checked
/// against hand-written recognizers over every short text, and against .NET's own regex engine where the grammar
/// is regular. Grammars the matcher cannot run (left recursion) or that do not parse are refused naming why.
public sealed class EbnfGrammarTests
{
    static bool Matches(string grammar, string text) =>
        GrammarAutomatonTests.Matches(new StructuredOutputsParams { Grammar = grammar }, text);

    const string Sql = """
        # a small SELECT, as in vLLM's structured outputs example
        root ::= select_statement
        select_statement ::= "SELECT " column " from " table " where " condition
        column ::= "col_1 " | "col_2 "
        table ::= "table_1 " | "table_2 "
        condition ::= column "= " number
        number ::= "1 " | "2 "
        """;

    [Theory]
    [InlineData("SELECT col_1  from table_2  where col_2 = 1 ", true)]
    [InlineData("SELECT col_2  from table_1  where col_1 = 2 ", true)]
    [InlineData("SELECT col_3  from table_1  where col_1 = 2 ", false)]
    [InlineData("SELECT col_1  from table_2  where col_2 = 1", false)]
    [InlineData("select col_1  from table_2  where col_2 = 1 ", false)]
    public void TheSqlExampleAcceptsItsStatements(string text, bool expected) => Assert.Equal(expected, Matches(Sql, text));

    /// Balanced brackets of two kinds: a context-free language no regex has.
    const string Balanced = """
        root  ::= group*
        group ::= "(" root ")" | "[" root "]"
        """;

    static bool IsBalanced(string text)
    {
        var open = new Stack<char>();
        foreach (var c in text)
            if (c is '(' or '[') open.Push(c);
            else if (open.Count == 0 || open.Pop() != (c == ')' ? '(' : '[')) return false;
        return open.Count == 0;
    }

    [Fact]
    public void RecursionAcceptsExactlyTheBalancedTexts()
    {
        var alphabet = "()[]";
        var texts = new List<string> { "" };
        for (var length = 1; length <= 8; length++)
            texts = [.. texts.Where(t => t.Length == length - 1).SelectMany(t => alphabet.Select(c => t + c)), .. texts];
        Assert.Equal(1 + 4 + 16 + 64 + 256 + 1024 + 4096 + 16384 + 65536, texts.Count);
        foreach (var text in texts) Assert.True(IsBalanced(text) == Matches(Balanced, text), text);
    }

    [Fact]
    public void ARegularGrammarAcceptsWhatTheEquivalentRegexAccepts()
    {
        const string grammar = """
            root ::= word ("," ws word){0,3} "."?
            word ::= [a-c]{1,3} | "\x41" [^a-z,.\n ]
            ws   ::= [ \t]?
            """;
        var regex = new System.Text.RegularExpressions.Regex(@"^(?:[a-c]{1,3}|A[^a-z,.\n ])(?:,[ \t]?(?:[a-c]{1,3}|A[^a-z,.\n ])){0,3}\.?$");
        var random = new Random(5);
        const string letters = "abcAZ9,. \té";
        for (var i = 0; i < 20_000; i++)
        {
            var text = new string([.. Enumerable.Range(0, random.Next(0, 14)).Select(_ => letters[random.Next(letters.Length)])]);
            Assert.True(regex.IsMatch(text) == Matches(grammar, text), text);
        }
        Assert.True(Matches(grammar, "ab, Aé,c."));
    }

    [Theory]
    [InlineData("""root ::= "a\n\t\\\"\u00e9\U0001F600" """, "a\n\t\\\"é😀", true)]
    [InlineData("""root ::= [^"\\]+ """, "héllo", true)]
    [InlineData("""root ::= [^"\\]+ """, "a\"b", false)]
    [InlineData("""root ::= .{3}""", "a\nü", true)]
    [InlineData("""root ::= "x"{2,} "y"?""", "xxxy", true)]
    [InlineData("""root ::= "x"{2,} "y"?""", "xy", false)]
    [InlineData("root ::= item-list\nitem-list ::= (item_1 \",\")* item_1\nitem_1 ::= [0-9]+ # digits\n", "1,22,333", true)]
    [InlineData("""root ::= "a" | """, "", true)]
    [InlineData("""root ::= ( "a" | "b" ) ( "c" ( "d" | "e" ) )+""", "acdce", true)]
    [InlineData("""root ::= "a" * "b" ?""", "aaa", true)]
    [InlineData("root ::= \"two\nlines\"", "two\nlines", true)]
    public void TermsQuantifiersAndEscapesMeanWhatGbnfSays(string grammar, string text, bool expected) =>
        Assert.Equal(expected, Matches(grammar, text));

    [Theory]
    [InlineData("""item ::= "a" """, "no rule 'root'")]
    [InlineData("""root ::= item""", "rule 'item' is used but never defined")]
    [InlineData("root ::= \"a\"\nroot ::= \"b\"", "line 2: rule 'root' is defined twice")]
    [InlineData("""root ::= root "a" | "b" """, "rule 'root' is left-recursive (root -> root)")]
    [InlineData("root ::= list\nlist ::= item? more\nmore ::= list \",\" | \"x\"\nitem ::= \"i\"", "left-recursive (list -> more -> list)")]
    [InlineData("""root ::= "abc""", "unterminated string")]
    [InlineData("""root ::= "\q" """, "'\\q' is not a supported escape")]
    [InlineData("""root ::= ("a" | "b" """, "missing ')'")]
    [InlineData("""root ::= [a-""", "missing ']'")]
    [InlineData("""root ::= [z-a]""", "bad character range")]
    [InlineData("""root ::= [\UFFFFFFFF-a]""", "bad hexadecimal escape")]
    [InlineData("""root = "a" """, "expected '::=' after 'root'")]
    [InlineData("""root ::= "a"{3,1}""", "bad repetition {3,1}")]
    [InlineData("""root ::= "a" ) """, "unexpected ')'")]
    public void MalformedGrammarsAreRefusedSayingWhy(string grammar, string message)
    {
        var error = Assert.Throws<InvalidRequestException>(() => new StructuredOutputsParams { Grammar = grammar }.Validate());
        Assert.Contains(message, error.Message);
        Assert.Equal("structured_outputs", error.Param);
    }
}
