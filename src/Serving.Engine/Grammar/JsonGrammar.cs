using static Serving.Engine.Grammar.GrammarExpr;

namespace Serving.Engine.Grammar;

/// The pieces of JSON text every JSON grammar shares: whitespace, strings, literals and any value.
internal static class JsonGrammar
{
    /// Whitespace where the common layouts put it (compact, "a": 1, "b": 2, and pretty-printed): after '{',
    /// '[' and ',' and before '}' and ']' none, one space, or a newline and up to MaxIndent spaces or tabs;
    /// after ':' none or one space; nowhere else. Bounded, so that a model cannot fill its budget with blanks.
    public const int MaxIndent = 16;

    public static readonly GrammarExpr Whitespace =
        Optional(Choice(Literal(" "), Sequence(Literal("\n"), Repeat(AnyOf(" \t"), 0, MaxIndent))));

    /// Between a member's key and its value: ":" or ": ".
    public static readonly GrammarExpr Colon = Sequence(Literal(":"), Optional(Literal(" ")));

    /// Between members or items: "," then Whitespace.
    public static readonly GrammarExpr Comma = Sequence(Literal(","), Whitespace);

    static readonly GrammarExpr HexDigit = Range("09afAF");

    /// A \u escape (four hex digits) of anything but a surrogate (a lone one is not text, and strict parsers refuse it).
    static readonly GrammarExpr UnicodeEscape = Sequence(Literal("u"), Choice(
        Sequence(Range("09acACefEF"), HexDigit, HexDigit, HexDigit),
        Sequence(AnyOf("dD"), Bytes((byte)'0', (byte)'7'), HexDigit, HexDigit)));

    /// One character of a JSON string's content: itself (not '"', '\' or a control character) or an escape.
    public static readonly GrammarExpr StringCharacter = Choice(
        CodePointSet.Of([(0x20, 0x10FFFF)]).Minus(CodePointSet.Of([('"', '"'), ('\\', '\\')])).ToUtf8(),
        Sequence(Literal("\\"), Choice(AnyOf("\"\\/bfnrt"), UnicodeEscape)));

    /// One byte from ranges given as pairs of ASCII characters: Range("09af") is [0-9a-f].
    static GrammarExpr Range(string pairs) =>
        new ByteSetExpr(pairs.Chunk(2).Select(p => new ByteRange((byte)p[0], (byte)p[1])).ToArray());

    public static GrammarExpr String(int minLength = 0, int? maxLength = null) =>
        Sequence(Literal("\""), Repeat(StringCharacter, minLength, maxLength), Literal("\""));

    /// What a key of an object's undeclared members may hold: any character but a control one.
    static readonly CodePointSet KeyCharacters = CodePointSet.Of([(0x20, CodePointSet.MaxCodePoint)]);

    /// One character of such a key, spelled one way (RegexParser.CharacterOf: itself, or \" and \\).
    public static readonly GrammarExpr KeyCharacter = RegexParser.CharacterOf(KeyCharacters, inJsonString: true);

    /// The text (inside the quotes) of a key that is none of names: an undeclared member's. Each character is spelled one way
    /// (RegexParser.CharacterOf: itself, or \" and \\), so that no escaped spelling of a name ("\u0061ge" for
    /// "age") gets past the exclusion. Built from the names' trie: at each node, end (unless a name ends there), go on
    /// with a character no name continues with (then anything), or follow a name's next character.
    public static GrammarExpr KeyTextOtherThan(IEnumerable<string> names)
    {
        var root = new KeyTrie();
        foreach (var name in names)
        {
            var node = root;
            foreach (var rune in name.EnumerateRunes())
                node = node.Children.TryGetValue(rune.Value, out var child) ? child : node.Children[rune.Value] = new KeyTrie();
            node.IsName = true;
        }
        GrammarExpr Outside(KeyTrie node)
        {
            var alternatives = new List<GrammarExpr>();
            if (!node.IsName) alternatives.Add(Empty);
            var others = KeyCharacters.Minus(CodePointSet.Of(node.Children.Keys.Select(c => (c, c))));
            if (!others.IsEmpty)
                alternatives.Add(Sequence(RegexParser.CharacterOf(others, inJsonString: true), Repeat(KeyCharacter, 0, null)));
            foreach (var (c, child) in node.Children)
                if (KeyCharacters.Contains(c))
                    alternatives.Add(Sequence(RegexParser.CharacterOf(CodePointSet.Single(c), inJsonString: true), Outside(child)));
            return new ChoiceExpr(alternatives);
        }
        return Outside(root);
    }

    /// A key's text inside the quotes, each character spelled as KeyTextOtherThan and StringMatching spell it.
    public static GrammarExpr KeyText(string key) => Literal(RegexParser.JsonSpelling(key));

    sealed class KeyTrie
    {
        public Dictionary<int, KeyTrie> Children { get; } = [];
        public bool IsName { get; set; }
    }

    /// A JSON string whose value matches a regular expression.
    public static GrammarExpr StringMatching(string pattern) =>
        Sequence(Literal("\""), RegexParser.Parse(pattern, inJsonString: true), Literal("\""));

    public static GrammarExpr Boolean() => Choice(Literal("true"), Literal("false"));

    /// "[" items "]" with minItems..maxItems items, separated by commas.
    public static GrammarExpr Array(GrammarExpr item, int minItems, int? maxItems)
    {
        if (maxItems == 0) return Sequence(Literal("["), Whitespace, Literal("]"));
        var separated = Sequence(Comma, item);
        var items = Sequence(item, Repeat(separated, Math.Max(minItems - 1, 0), maxItems - 1));
        return Sequence(Literal("["), Whitespace, minItems == 0 ? Optional(items) : items, Whitespace, Literal("]"));
    }

    /// "{" members "}" with any string keys and values of the value grammar.
    public static GrammarExpr Object(GrammarExpr value)
    {
        var member = Sequence(String(), Colon, value);
        var members = Sequence(member, Repeat(Sequence(Comma, member), 0, null));
        return Sequence(Literal("{"), Whitespace, Optional(members), Whitespace, Literal("}"));
    }

    /// Declares and defines the rule "any JSON value" in rules; returns its index.
    public static int DefineAnyValue(GrammarRules rules)
    {
        var value = rules.Declare("json-value");
        var any = new RuleExpr(value);
        rules.Define(value, Choice(Object(any), Array(any, 0, null), String(), NumberGrammar.AnyNumber(),
            Boolean(), Literal("null")));
        return value;
    }
}
