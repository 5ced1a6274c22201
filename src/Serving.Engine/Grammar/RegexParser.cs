namespace Serving.Engine.Grammar;

/// Parses the regular expressions structured outputs use (vLLM's "regex", JSON Schema's "pattern" and our
/// string formats) into a byte grammar. The syntax is the common subset of Python's re and ECMAScript:
/// literals, '.', classes ([a-z], [^"], \d \w \s and their negations), groups ((...), (?:...), (?<name>...)),
/// alternation, quantifiers (* + ? {n} {n,} {n,m}, lazy or not: the language is the same), and '^' / '$' at
/// the ends. Back-references, look-around and word boundaries are refused. The whole text must match.
/// In a JSON string (inJsonString) each character is written as JSON spells it inside quotes: '"', '\\' and
/// control characters as escapes, so the output is a JSON string whose value matches the pattern.
internal sealed class RegexParser
{
    public const int MaxRepeat = 1000;

    /// Groups nest at most this deep (the parser recurses per group).
    public const int MaxNesting = 100;

    static readonly CodePointSet Digit = CodePointSet.Of([('0', '9')]);
    static readonly CodePointSet Word = CodePointSet.Of([('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_')]);
    static readonly CodePointSet Space = CodePointSet.Of([(' ', ' '), ('\t', '\r')]);
    static readonly CodePointSet NotNewline = CodePointSet.Single('\n').Complement();
    /// What a JSON string writes as an escape rather than as itself.
    static readonly CodePointSet JsonEscaped = CodePointSet.Of([(0, 0x1F), ('"', '"'), ('\\', '\\')]);

    readonly string _pattern;
    readonly bool _inJsonString;
    int _at;
    int _depth;

    RegexParser(string pattern, bool inJsonString) => (_pattern, _inJsonString) = (pattern, inJsonString);

    public static GrammarExpr Parse(string pattern, bool inJsonString = false)
    {
        var parser = new RegexParser(pattern, inJsonString);
        if (parser.Peek('^')) parser._at++;
        var expr = parser.ParseAlternation();
        if (parser.Peek('$')) parser._at++;
        if (parser._at < pattern.Length)
            throw parser.Error(parser._pattern[parser._at] == ')' ? "unbalanced ')'" : $"unexpected '{parser._pattern[parser._at]}'");
        return expr;
    }

    /// One character of the set, as raw UTF-8 or as JSON string content.
    public static GrammarExpr CharacterOf(CodePointSet set, bool inJsonString)
    {
        if (!inJsonString) return set.ToUtf8();
        var alternatives = new List<GrammarExpr>();
        var plain = set.Minus(JsonEscaped);
        if (!plain.IsEmpty) alternatives.Add(plain.ToUtf8());
        foreach (var (lo, hi) in set.Ranges)
            for (var c = lo; c <= Math.Min(hi, '\\'); c++)
                if (JsonEscaped.Contains(c)) alternatives.Add(GrammarExpr.Literal(JsonEscape((char)c)));
        return new ChoiceExpr(alternatives);
    }

    /// Text as a JSON string spells it between its quotes, each character as CharacterOf spells it.
    public static string JsonSpelling(string text) =>
        string.Concat(text.EnumerateRunes().Select(r => JsonEscaped.Contains(r.Value) ? JsonEscape((char)r.Value) : r.ToString()));

    static string JsonEscape(char c) => c switch
    {
        '"' => "\\\"",
        '\\' => "\\\\",
        '\n' => "\\n",
        '\t' => "\\t",
        '\r' => "\\r",
        '\b' => "\\b",
        '\f' => "\\f",
        _ => $"\\u{(int)c:x4}",
    };

    GrammarExpr ParseAlternation()
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
        while (_at < _pattern.Length && !Peek('|') && !Peek(')') && !(Peek('$') && _at == _pattern.Length - 1))
            items.Add(ParseQuantified(ParseAtom()));
        return new SequenceExpr(items);
    }

    GrammarExpr ParseQuantified(GrammarExpr atom)
    {
        while (_at < _pattern.Length)
        {
            var c = _pattern[_at];
            (int Min, int? Max)? bounds = c switch
            {
                '*' => (0, null),
                '+' => (1, null),
                '?' => (0, 1),
                '{' => ParseBraces(),
                _ => null,
            };
            if (bounds is not { } b) return atom;
            if (c != '{') _at++;
            if (Peek('?') || Peek('+')) _at++; // lazy / possessive: the same language
            atom = GrammarExpr.Repeat(atom, b.Min, b.Max);
        }
        return atom;
    }

    /// {n}, {n,}, {n,m}; a '{' that does not start one is a literal (as in Python).
    (int, int?)? ParseBraces()
    {
        var close = _pattern.IndexOf('}', _at);
        if (close < 0) return null;
        var parts = _pattern[(_at + 1)..close].Split(',');
        if (parts.Length > 2 || !int.TryParse(parts[0], out var min)) return null;
        int? max = min;
        if (parts.Length == 2) max = parts[1].Length == 0 ? null : int.TryParse(parts[1], out var m) ? m : -1;
        if (max == -1) return null;
        if (min > MaxRepeat || max > MaxRepeat) throw Error($"repetition counts above {MaxRepeat} are not supported");
        if (max < min) throw Error($"bad repetition {{{min},{max}}}");
        _at = close + 1;
        return (min, max);
    }

    GrammarExpr ParseAtom()
    {
        var c = _pattern[_at++];
        switch (c)
        {
            case '(':
                if (++_depth > MaxNesting) throw Error($"groups nested deeper than {MaxNesting} are not supported");
                SkipGroupPrefix();
                var inner = ParseAlternation();
                if (!Peek(')')) throw Error("missing ')'");
                _at++;
                _depth--;
                return inner;
            case '[':
                return CharacterOf(ParseClass(), _inJsonString);
            case '.':
                return CharacterOf(NotNewline, _inJsonString);
            case '\\':
                return CharacterOf(ParseEscape(inClass: false), _inJsonString);
            case '^' or '$':
                throw Error($"'{c}' is only supported at the start or end of the pattern");
            case '*' or '+' or '?':
                throw Error($"nothing to repeat before '{c}'");
            default:
                return CharacterOf(CodePointSet.Single(ReadCodePoint(c)), _inJsonString);
        }
    }

    void SkipGroupPrefix()
    {
        if (!Peek('?')) return;
        var rest = _pattern.AsSpan(_at);
        if (rest.StartsWith("?:")) _at += 2;
        else if (rest.StartsWith("?<") && !rest.StartsWith("?<=") && !rest.StartsWith("?<!") || rest.StartsWith("?P<"))
            _at = _pattern.IndexOf('>', _at) is var end and > 0 ? end + 1 : throw Error("unterminated group name");
        else throw Error("look-around and inline flags are not supported");
    }

    CodePointSet ParseClass()
    {
        var negated = Peek('^');
        if (negated) _at++;
        var set = CodePointSet.Of([]);
        var first = true;
        while (_at < _pattern.Length && (first || !Peek(']')))
        {
            first = false;
            var item = ParseClassItem(out var single);
            if (single is { } lo && Peek('-') && _at + 1 < _pattern.Length && _pattern[_at + 1] != ']')
            {
                _at++;
                var end = ParseClassItem(out var hiSingle);
                if (hiSingle is not { } hi || hi < lo) throw Error("bad character range in class");
                item = CodePointSet.Of([(lo, hi)]);
            }
            set = set.Union(item);
        }
        if (!Peek(']')) throw Error("missing ']'");
        _at++;
        return negated ? set.Complement() : set;
    }

    CodePointSet ParseClassItem(out int? single)
    {
        var c = _pattern[_at++];
        var set = c == '\\' ? ParseEscape(inClass: true) : CodePointSet.Single(ReadCodePoint(c));
        single = set.Ranges is [var (lo, hi)] && lo == hi ? lo : null;
        return set;
    }

    CodePointSet ParseEscape(bool inClass)
    {
        if (_at >= _pattern.Length) throw Error("trailing '\\'");
        var c = _pattern[_at++];
        return c switch
        {
            'd' => Digit,
            'D' => Digit.Complement(),
            'w' => Word,
            'W' => Word.Complement(),
            's' => Space,
            'S' => Space.Complement(),
            'n' => CodePointSet.Single('\n'),
            't' => CodePointSet.Single('\t'),
            'r' => CodePointSet.Single('\r'),
            'f' => CodePointSet.Single('\f'),
            'v' => CodePointSet.Single('\v'),
            '0' => CodePointSet.Single(0),
            'b' when inClass => CodePointSet.Single('\b'),
            'x' => CodePointSet.Single(ReadHex(2)),
            'u' => CodePointSet.Single(ReadHex(4)),
            _ when char.IsAsciiLetterOrDigit(c) => throw Error($"'\\{c}' is not supported"),
            _ => CodePointSet.Single(ReadCodePoint(c)),
        };
    }

    int ReadHex(int digits)
    {
        if (_at + digits > _pattern.Length || !int.TryParse(_pattern.AsSpan(_at, digits), System.Globalization.NumberStyles.HexNumber, null, out var value))
            throw Error("bad hexadecimal escape");
        _at += digits;
        return value;
    }

    /// c and, when it is a high surrogate, the low surrogate after it.
    int ReadCodePoint(char c)
    {
        if (!char.IsHighSurrogate(c)) return c;
        if (_at < _pattern.Length && char.IsLowSurrogate(_pattern[_at])) return char.ConvertToUtf32(c, _pattern[_at++]);
        throw Error("invalid UTF-16 in pattern");
    }

    bool Peek(char c) => _at < _pattern.Length && _pattern[_at] == c;

    GrammarException Error(string message) => new($"invalid regular expression at offset {_at}: {message}");
}
