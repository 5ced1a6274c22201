using System.Text;

namespace Serving.Engine.Grammar;

/// Parses a grammar in GBNF, the EBNF of llama.cpp and xgrammar that vLLM's structured_outputs.grammar takes:
///
///     root   ::= answer ("," answer)*     # a comment
///     answer ::= "yes" | "no" | [0-9]{1,3}
///
/// Rules are `name ::= alternatives`; a rule runs until the next `name ::=` (newlines are white space). Terms:
/// "literals" (escapes \n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH), [character classes] ([^...] negated, a-z ranges, the
/// same escapes), `.` (any character), (groups), other rules by name, each optionally followed by * + ? {m} {m,}
/// {m,n}. The text must match the rule "root". A rule used but never defined, a rule defined twice and left
/// recursion (a rule that can reach itself before writing a byte, which a top-down matcher cannot run: write it
/// with repetition) are refused, naming the rule.
internal sealed class EbnfParser
{
    public const string Root = "root";

    /// Most rules a grammar may name (a bound on the work of checking it).
    public const int MaxRules = 4096;

    readonly string _text;
    readonly GrammarRules _rules = new();
    readonly Dictionary<string, int> _ids = [];
    readonly HashSet<string> _defined = [];
    int _at;
    int _depth;

    EbnfParser(string text) => _text = text;

    public static (GrammarRules Rules, int Root) Parse(string text)
    {
        var parser = new EbnfParser(text);
        parser.SkipSpace();
        while (parser._at < text.Length) parser.ParseRule();
        if (!parser._defined.Contains(Root)) throw new GrammarException($"invalid grammar: it has no rule '{Root}' (write '{Root} ::= ...')");
        foreach (var (name, _) in parser._ids)
            if (!parser._defined.Contains(name)) throw new GrammarException($"invalid grammar: rule '{name}' is used but never defined");
        LeftRecursion.Refuse(parser._rules);
        return (parser._rules, parser._ids[Root]);
    }

    void ParseRule()
    {
        var start = _at;
        var name = ParseName() ?? throw Error($"unexpected '{_text[_at]}' (a rule starts with its name)");
        SkipSpace();
        if (!_text.AsSpan(_at).StartsWith("::=")) throw Error($"expected '::=' after '{name}'");
        _at += 3;
        if (!_defined.Add(name)) { _at = start; throw Error($"rule '{name}' is defined twice"); }
        _rules.Define(Id(name), ParseAlternatives());
    }

    GrammarExpr ParseAlternatives()
    {
        var alternatives = new List<GrammarExpr> { ParseSequence() };
        while (Peek('|'))
        {
            _at++;
            alternatives.Add(ParseSequence());
        }
        return GrammarExpr.Choice([.. alternatives]);
    }

    GrammarExpr ParseSequence()
    {
        var items = new List<GrammarExpr>();
        while (true)
        {
            SkipSpace();
            if (_at >= _text.Length || Peek('|') || Peek(')') || StartsRule()) return GrammarExpr.Sequence([.. items]);
            items.Add(ParseQuantified(ParseTerm()));
        }
    }

    GrammarExpr ParseTerm()
    {
        var c = _text[_at];
        switch (c)
        {
            case '"':
                _at++;
                return ParseLiteral();
            case '[':
                _at++;
                return ParseClass().ToUtf8();
            case '.':
                _at++;
                return CodePointSet.All.ToUtf8();
            case '(':
                _at++;
                if (++_depth > RegexParser.MaxNesting) throw Error($"groups nested deeper than {RegexParser.MaxNesting} are not supported");
                var inner = ParseAlternatives();
                SkipSpace();
                if (!Peek(')')) throw Error("missing ')'");
                _at++;
                _depth--;
                return inner;
            default:
                var name = ParseName() ?? throw Error($"unexpected '{c}'");
                return new RuleExpr(Id(name));
        }
    }

    GrammarExpr ParseQuantified(GrammarExpr term)
    {
        while (true)
        {
            SkipSpace();   // llama.cpp reads "a" * as "a"*
            if (_at >= _text.Length) return term;
            var c = _text[_at];
            (int Min, int? Max)? bounds = c switch
            {
                '*' => (0, null),
                '+' => (1, null),
                '?' => (0, 1),
                '{' => ParseBraces(),
                _ => null,
            };
            if (bounds is not { } b) return term;
            if (c != '{') _at++;
            term = GrammarExpr.Repeat(term, b.Min, b.Max);
        }
    }

    (int, int?) ParseBraces()
    {
        var close = _text.IndexOf('}', _at);
        if (close < 0) throw Error("missing '}'");
        var parts = _text[(_at + 1)..close].Split(',');
        if (parts.Length > 2 || !int.TryParse(parts[0].Trim(), out var min) || min < 0) throw Error("bad repetition: write {m}, {m,} or {m,n}");
        int? max = min;
        if (parts.Length == 2)
            max = parts[1].Trim().Length == 0 ? null
                : int.TryParse(parts[1].Trim(), out var m) ? m : throw Error("bad repetition: write {m}, {m,} or {m,n}");
        if (min > RegexParser.MaxRepeat || max > RegexParser.MaxRepeat) throw Error($"repetition counts above {RegexParser.MaxRepeat} are not supported");
        if (max < min) throw Error($"bad repetition {{{min},{max}}}");
        _at = close + 1;
        return (min, max);
    }

    /// The rest of a "literal" after its opening quote.
    GrammarExpr ParseLiteral()
    {
        var text = new StringBuilder();
        while (true)
        {
            if (_at >= _text.Length) throw Error("unterminated string");
            var c = _text[_at++];
            if (c == '"') return GrammarExpr.Literal(text.ToString());
            text.Append(char.ConvertFromUtf32(c == '\\' ? ParseEscape() : CodePoint(c)));
        }
    }

    /// The rest of a [class] after its '['.
    CodePointSet ParseClass()
    {
        var negated = Peek('^');
        if (negated) _at++;
        var ranges = new List<(int, int)>();
        while (!Peek(']'))
        {
            var lo = Member();
            var hi = lo;
            if (Peek('-') && _at + 1 < _text.Length && _text[_at + 1] != ']')
            {
                _at++;
                hi = Member();
                if (hi < lo) throw Error("bad character range in class");
            }
            ranges.Add((lo, hi));
        }
        _at++;
        var set = CodePointSet.Of(ranges);
        return negated ? set.Complement() : set;

        int Member()
        {
            if (_at >= _text.Length) throw Error("missing ']'");
            var c = _text[_at++];
            return c == '\\' ? ParseEscape() : CodePoint(c);
        }
    }

    int ParseEscape()
    {
        if (_at >= _text.Length) throw Error("trailing '\\'");
        var c = _text[_at++];
        return c switch
        {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            '0' => 0,
            'x' => Hex(2),
            'u' => Hex(4),
            'U' => Hex(8),
            '\\' or '"' or '\'' or '[' or ']' or '-' or '^' => c,
            _ => throw Error($"'\\{c}' is not a supported escape"),
        };
    }

    int Hex(int digits)
    {
        if (_at + digits > _text.Length
            || !uint.TryParse(_text.AsSpan(_at, digits), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var value)
            || value > CodePointSet.MaxCodePoint || value is >= 0xD800 and <= 0xDFFF)
            throw Error("bad hexadecimal escape");
        _at += digits;
        return (int)value;
    }

    /// c and, when it is a high surrogate, the low surrogate after it.
    int CodePoint(char c)
    {
        if (!char.IsSurrogate(c)) return c;
        if (char.IsHighSurrogate(c) && _at < _text.Length && char.IsLowSurrogate(_text[_at])) return char.ConvertToUtf32(c, _text[_at++]);
        throw Error("invalid UTF-16 in grammar");
    }

    /// A rule name ([A-Za-z_][A-Za-z0-9_.-]*), or null when none starts here.
    string? ParseName()
    {
        var start = _at;
        if (_at >= _text.Length || !(char.IsAsciiLetter(_text[_at]) || _text[_at] == '_')) return null;
        while (_at < _text.Length && (char.IsAsciiLetterOrDigit(_text[_at]) || _text[_at] is '_' or '-' or '.')) _at++;
        return _text[start.._at];
    }

    /// Whether `name ::=` starts here: the end of the rule before it.
    bool StartsRule()
    {
        var start = _at;
        var isRule = ParseName() is not null && SkipSpaceThen("::=");
        _at = start;
        return isRule;
    }

    bool SkipSpaceThen(string token)
    {
        SkipSpace();
        return _text.AsSpan(_at).StartsWith(token);
    }

    /// White space (newlines included) and # comments.
    void SkipSpace()
    {
        while (_at < _text.Length)
        {
            if (char.IsWhiteSpace(_text[_at])) _at++;
            else if (_text[_at] == '#')
                while (_at < _text.Length && _text[_at] != '\n') _at++;
            else return;
        }
    }

    int Id(string name)
    {
        if (_ids.TryGetValue(name, out var id)) return id;
        if (_ids.Count >= MaxRules) throw Error($"grammars of more than {MaxRules} rules are not supported");
        return _ids[name] = _rules.Declare(name);
    }

    bool Peek(char c) => _at < _text.Length && _text[_at] == c;

    GrammarException Error(string message)
    {
        var line = _text.AsSpan(0, Math.Min(_at, _text.Length)).Count('\n') + 1;
        return new GrammarException($"invalid grammar at line {line}: {message}");
    }
}
