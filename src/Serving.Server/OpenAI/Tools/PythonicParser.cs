using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Serving.Server.OpenAI.Tools;

/// Pythonic tool calling (vLLM's "pythonic": Llama 3.2 and Llama 4 with their pythonic templates, ToolACE): the answer
/// is a Python list of calls with keyword arguments, [get_weather(city="Paris", days=3), get_time()], optionally
/// between Llama 4's <|python_start|> and <|python_end|>. Arguments are Python literals (strings, numbers, True, False,
/// None, lists, tuples, dicts), read into their JSON. Anything else (positional arguments, expressions) is not a call.
internal sealed class PythonicParser() : WholeAnswerToolCallParser(Start, "[")
{
    const string Start = "<|python_start|>";
    const string End = "<|python_end|>";

    protected override IReadOnlyList<ParsedToolCall>? ParseCalls(string calls)
    {
        var body = calls.Trim();
        if (body.StartsWith(Start, StringComparison.Ordinal)) body = body[Start.Length..];
        if (body.EndsWith(End, StringComparison.Ordinal)) body = body[..^End.Length];
        var reader = new PythonLiterals(body.Trim());
        return reader.CallList();
    }

    /// A reader of one list of calls in Python syntax; null from any method means "not that".
    sealed class PythonLiterals(string text)
    {
        const int MaxDepth = 64;
        int _at;
        int _depth;

        public List<ParsedToolCall>? CallList()
        {
            if (!Take('[')) return null;
            var calls = new List<ParsedToolCall>();
            while (true)
            {
                if (Take(']')) return calls.Count > 0 && AtEnd() ? calls : null;
                if (calls.Count > 0 && !Take(',')) return null;
                if (calls.Count > 0 && Take(']')) return AtEnd() ? calls : null;   // a trailing comma
                if (Call() is not { } call) return null;
                calls.Add(call);
            }
        }

        ParsedToolCall? Call()
        {
            if (Name() is not { } name || !Take('(')) return null;
            var arguments = new JsonObject();
            while (!Take(')'))
            {
                if (arguments.Count > 0 && !Take(',')) return null;
                if (arguments.Count > 0 && Take(')')) break;
                if (Name() is not { } key || !Take('=') || Value() is not (true, var value) || arguments.ContainsKey(key)) return null;
                arguments[key] = value;
            }
            return new ParsedToolCall(name, arguments.ToJsonString());
        }

        /// A Python literal as JSON (None is JSON null, so the result says whether one was read).
        (bool Read, JsonNode? Value) Value()
        {
            SkipSpace();
            if (_at >= text.Length || ++_depth > MaxDepth) return (false, null);
            try
            {
                var c = text[_at];
                if (c is '"' or '\'') return String() is { } s ? (true, JsonValue.Create(s)) : (false, null);
                if (c is '[' or '(') return Sequence(c == '[' ? ']' : ')');
                if (c == '{') return Dict();
                if (c is '-' or '+' or '.' || char.IsAsciiDigit(c)) return Number();
                return Name() switch
                {
                    "True" => (true, JsonValue.Create(true)),
                    "False" => (true, JsonValue.Create(false)),
                    "None" => (true, null),
                    _ => (false, null),
                };
            }
            finally
            {
                _depth--;
            }
        }

        (bool, JsonNode?) Sequence(char close)
        {
            _at++;
            var items = new JsonArray();
            while (!Take(close))
            {
                if (items.Count > 0 && !Take(',')) return (false, null);
                if (items.Count > 0 && Take(close)) break;
                if (Value() is not (true, var item)) return (false, null);
                items.Add(item);
            }
            return (true, items);
        }

        (bool, JsonNode?) Dict()
        {
            _at++;
            var dict = new JsonObject();
            while (!Take('}'))
            {
                if (dict.Count > 0 && !Take(',')) return (false, null);
                if (dict.Count > 0 && Take('}')) break;
                SkipSpace();
                if (_at >= text.Length || text[_at] is not ('"' or '\'') || String() is not { } key || !Take(':')
                    || Value() is not (true, var value)) return (false, null);
                dict[key] = value;
            }
            return (true, dict);
        }

        (bool, JsonNode?) Number()
        {
            var start = _at;
            while (_at < text.Length && (char.IsAsciiDigit(text[_at]) || text[_at] is '-' or '+' or '.' or 'e' or 'E' or '_')) _at++;
            var literal = text[start.._at].Replace("_", "", StringComparison.Ordinal);
            if (long.TryParse(literal, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer)) return (true, JsonValue.Create(integer));
            return double.TryParse(literal, NumberStyles.Float, CultureInfo.InvariantCulture, out var real) && double.IsFinite(real)
                ? (true, JsonValue.Create(real)) : (false, null);
        }

        /// A '...' or "..." string with Python's escapes; an unknown escape keeps its backslash, as Python does.
        string? String()
        {
            var quote = text[_at++];
            var value = new StringBuilder();
            while (_at < text.Length)
            {
                var c = text[_at++];
                if (c == quote) return value.ToString();
                if (c != '\\') { value.Append(c); continue; }
                if (_at >= text.Length) return null;
                var e = text[_at++];
                switch (e)
                {
                    case '\n': break;   // a line continuation
                    case '\\' or '\'' or '"': value.Append(e); break;
                    case 'n': value.Append('\n'); break;
                    case 't': value.Append('\t'); break;
                    case 'r': value.Append('\r'); break;
                    case 'a': value.Append('\a'); break;
                    case 'b': value.Append('\b'); break;
                    case 'f': value.Append('\f'); break;
                    case 'v': value.Append('\v'); break;
                    case >= '0' and <= '7':
                        var octal = e - '0';
                        for (var digits = 1; digits < 3 && _at < text.Length && text[_at] is >= '0' and <= '7'; digits++) octal = octal * 8 + (text[_at++] - '0');
                        value.Append((char)octal);
                        break;
                    case 'x' or 'u' or 'U':
                        var length = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                        if (_at + length > text.Length
                            || !uint.TryParse(text.AsSpan(_at, length), NumberStyles.AllowHexSpecifier, null, out var code)
                            || code > 0x10FFFF || code is >= 0xD800 and <= 0xDFFF) return null;
                        value.Append(char.ConvertFromUtf32((int)code));
                        _at += length;
                        break;
                    default: value.Append('\\').Append(e); break;
                }
            }
            return null;
        }

        string? Name()
        {
            SkipSpace();
            var start = _at;
            if (_at >= text.Length || !(char.IsLetter(text[_at]) || text[_at] == '_')) return null;
            while (_at < text.Length && (char.IsLetterOrDigit(text[_at]) || text[_at] is '_' or '.' or '-')) _at++;
            return text[start.._at];
        }

        bool Take(char c)
        {
            SkipSpace();
            if (_at >= text.Length || text[_at] != c) return false;
            _at++;
            return true;
        }

        bool AtEnd()
        {
            SkipSpace();
            return _at == text.Length;
        }

        void SkipSpace()
        {
            while (_at < text.Length && char.IsWhiteSpace(text[_at])) _at++;
        }
    }
}
