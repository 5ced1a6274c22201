using System.Text;

namespace Serving.Deploy.Tests.Support.Helm;

/// Splits template source into text and actions, applying Go's trim markers ("{{- " trims the whitespace
/// before the action, " -}}" the whitespace after it), and splits an action into tokens.
internal static class TemplateLexer
{
    public static List<(bool IsAction, string Text)> Split(string source)
    {
        var items = new List<(bool IsAction, string Text)>();
        var position = 0;
        var trimNextText = false;
        while (position < source.Length)
        {
            var open = source.IndexOf("{{", position, StringComparison.Ordinal);
            var text = source[position..(open < 0 ? source.Length : open)];
            if (trimNextText) text = text.TrimStart();
            if (open < 0) { items.Add((false, text)); break; }

            var trimBefore = open + 3 < source.Length && source[open + 2] == '-' && char.IsWhiteSpace(source[open + 3]);
            if (trimBefore) text = text.TrimEnd();
            items.Add((false, text));

            var contentStart = open + (trimBefore ? 3 : 2);
            var close = FindClose(source, contentStart);
            trimNextText = source[close - 1] == '-' && char.IsWhiteSpace(source[close - 2]);
            items.Add((true, source[contentStart..(trimNextText ? close - 1 : close)].Trim()));
            position = close + 2;
        }
        return items;
    }

    /// Index of the "}}" closing an action that starts at start (quoted strings and comments may hold braces).
    static int FindClose(string source, int start)
    {
        var trimmed = source.AsSpan(start).TrimStart();
        if (trimmed.StartsWith("/*"))
        {
            var commentEnd = source.IndexOf("*/", start, StringComparison.Ordinal);
            if (commentEnd < 0) throw new FormatException("unclosed comment");
            start = commentEnd + 2;
        }
        for (var i = start; i < source.Length - 1; i++)
        {
            if (source[i] == '"') i = SkipString(source, i);
            else if (source[i] == '}' && source[i + 1] == '}') return i;
        }
        throw new FormatException("unclosed action");
    }

    static int SkipString(string source, int quote)
    {
        for (var i = quote + 1; i < source.Length; i++)
        {
            if (source[i] == '\\') i++;
            else if (source[i] == '"') return i;
        }
        throw new FormatException("unclosed string");
    }

    /// Tokens of one action: words, .fields, $variables, "strings", numbers, '|', '(', ')', ':=', ','.
    /// A comment gives no tokens.
    public static List<string> Tokenize(string action)
    {
        var tokens = new List<string>();
        if (action.StartsWith("/*", StringComparison.Ordinal)) return tokens;
        for (var i = 0; i < action.Length;)
        {
            var c = action[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (c is '|' or '(' or ')' or ',') { tokens.Add(c.ToString()); i++; continue; }
            if (c == ':' && i + 1 < action.Length && action[i + 1] == '=') { tokens.Add(":="); i += 2; continue; }
            var end = c == '"' ? SkipString(action, i) + 1 : WordEnd(action, i);
            tokens.Add(action[i..end]);
            i = end;
        }
        return tokens;
    }

    static int WordEnd(string action, int start)
    {
        var i = start;
        while (i < action.Length && !char.IsWhiteSpace(action[i]) && action[i] is not ('|' or '(' or ')' or ','))
            i++;
        if (i == start) throw new FormatException($"unexpected character '{action[start]}' in '{action}'");
        return i;
    }

    /// Go's strconv.Quote for the strings charts print: backslash, quote and control characters escaped.
    public static string Quote(string value)
    {
        var builder = new StringBuilder("\"");
        foreach (var c in value)
            builder.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\t' => "\\t",
                '\r' => "\\r",
                _ => c.ToString(),
            });
        return builder.Append('"').ToString();
    }
}
