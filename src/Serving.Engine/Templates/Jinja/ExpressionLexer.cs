using System.Globalization;
using System.Text;

namespace Serving.Engine.Templates.Jinja;

/// Reads one token inside a {{ }} or {% %} tag: names, numbers, string literals, operators.
internal static class ExpressionLexer
{
    static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="];

    public static Token Next(string src, ref int pos, int line)
    {
        var c = src[pos];
        if (char.IsLetter(c) || c == '_') return ReadName(src, ref pos, line);
        if (char.IsAsciiDigit(c)) return ReadNumber(src, ref pos, line);
        if (c is '\'' or '"') return ReadString(src, ref pos, line);
        foreach (var op in Operators)
            if (string.CompareOrdinal(src, pos, op, 0, op.Length) == 0)
            {
                pos += op.Length;
                return new Token(TokenKind.Operator, op, line);
            }
        throw TemplateException.Syntax($"unexpected character '{c}'", line);
    }

    static Token ReadName(string src, ref int pos, int line)
    {
        var start = pos;
        while (pos < src.Length && (char.IsLetterOrDigit(src[pos]) || src[pos] == '_')) pos++;
        return new Token(TokenKind.Name, src[start..pos], line);
    }

    static Token ReadNumber(string src, ref int pos, int line)
    {
        var start = pos;
        SkipDigits(src, ref pos);
        var isFloat = false;
        if (pos + 1 < src.Length && src[pos] == '.' && char.IsAsciiDigit(src[pos + 1]))
        {
            isFloat = true;
            pos++;
            SkipDigits(src, ref pos);
        }
        if (pos < src.Length && src[pos] is 'e' or 'E')
        {
            var save = pos++;
            if (pos < src.Length && src[pos] is '+' or '-') pos++;
            if (pos < src.Length && char.IsAsciiDigit(src[pos])) { isFloat = true; SkipDigits(src, ref pos); }
            else pos = save;
        }
        var text = src[start..pos].Replace("_", "");
        return new Token(isFloat ? TokenKind.Float : TokenKind.Integer, text, line);
    }

    static void SkipDigits(string src, ref int pos)
    {
        while (pos < src.Length && (char.IsAsciiDigit(src[pos]) || src[pos] == '_')) pos++;
    }

    /// Python string literal rules: \n \t \r \\ \' \" \xHH \uHHHH \UHHHHHHHH; unknown escapes are kept as written.
    static Token ReadString(string src, ref int pos, int line)
    {
        var quote = src[pos++];
        var sb = new StringBuilder();
        while (true)
        {
            if (pos >= src.Length) throw TemplateException.Syntax("unterminated string literal", line);
            var c = src[pos++];
            if (c == quote) return new Token(TokenKind.String, sb.ToString(), line);
            if (c != '\\' || pos >= src.Length) { sb.Append(c); continue; }
            var e = src[pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '0': sb.Append('\0'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '\\' or '\'' or '"': sb.Append(e); break;
                case '\n': break; // line continuation
                case 'x': sb.Append(ReadHex(src, ref pos, 2, line)); break;
                case 'u': sb.Append(ReadHex(src, ref pos, 4, line)); break;
                case 'U': sb.Append(ReadHex(src, ref pos, 8, line)); break;
                default: sb.Append('\\').Append(e); break;
            }
        }
    }

    static string ReadHex(string src, ref int pos, int digits, int line)
    {
        if (pos + digits > src.Length
            || !int.TryParse(src.AsSpan(pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var code))
            throw TemplateException.Syntax("invalid escape sequence in string literal", line);
        pos += digits;
        return char.ConvertFromUtf32(code);
    }
}
