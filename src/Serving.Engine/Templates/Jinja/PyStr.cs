using System.Text;

namespace Serving.Engine.Templates.Jinja;

/// Python str operations whose exact behaviour templates depend on (strip, split, title, ...).
internal static class PyStr
{
    /// str.isspace: Unicode whitespace plus the \x1c-\x1f separators that .NET does not count.
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';

    public static string Strip(string s, string? chars, bool left = true, bool right = true)
    {
        bool Strippable(char c) => chars is null ? IsSpace(c) : chars.Contains(c);
        var start = 0;
        var end = s.Length;
        if (left) while (start < end && Strippable(s[start])) start++;
        if (right) while (end > start && Strippable(s[end - 1])) end--;
        return s[start..end];
    }

    /// str.split(sep=None, maxsplit=-1): without sep, splits on whitespace runs and drops empty parts.
    public static List<string> Split(string s, string? sep, long maxSplit)
    {
        if (sep is null) return SplitWhitespace(s, maxSplit);
        if (sep.Length == 0) throw new JinjaRuntimeError("empty separator");
        var parts = new List<string>();
        var start = 0;
        while (maxSplit < 0 || parts.Count < maxSplit)
        {
            var at = s.IndexOf(sep, start, StringComparison.Ordinal);
            if (at < 0) break;
            parts.Add(s[start..at]);
            start = at + sep.Length;
        }
        parts.Add(s[start..]);
        return parts;
    }

    static List<string> SplitWhitespace(string s, long maxSplit)
    {
        var parts = new List<string>();
        var i = 0;
        while (true)
        {
            while (i < s.Length && IsSpace(s[i])) i++;
            if (i >= s.Length) break;
            if (maxSplit >= 0 && parts.Count == maxSplit)
            {
                parts.Add(Strip(s[i..], null, left: false));
                break;
            }
            var start = i;
            while (i < s.Length && !IsSpace(s[i])) i++;
            parts.Add(s[start..i]);
        }
        return parts;
    }

    /// str.splitlines() for \n, \r\n and \r line ends: no empty part after a final line end.
    public static List<string> SplitLines(string s)
    {
        var lines = new List<string>();
        var start = 0;
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] != '\n' && s[i] != '\r') continue;
            lines.Add(s[start..i]);
            if (s[i] == '\r' && i + 1 < s.Length && s[i + 1] == '\n') i++;
            start = i + 1;
        }
        if (start < s.Length) lines.Add(s[start..]);
        return lines;
    }

    /// str.replace(old, new, count=-1), including Python's behaviour for an empty `old`.
    public static string Replace(string s, string old, string replacement, long count = -1)
    {
        if (count < 0) count = long.MaxValue;
        var occurrences = old.Length == 0 ? s.Length + 1 : CountOf(s, old);
        RenderLimits.CheckLength(s.Length + Math.Min(occurrences, count) * (long)replacement.Length);
        var sb = new StringBuilder();
        if (old.Length == 0)
        {
            for (var i = 0; i <= s.Length; i++)
            {
                if (i < count) sb.Append(replacement);
                if (i < s.Length) sb.Append(s[i]);
            }
            return sb.ToString();
        }
        var start = 0;
        for (var done = 0L; done < count; done++)
        {
            var at = s.IndexOf(old, start, StringComparison.Ordinal);
            if (at < 0) break;
            sb.Append(s, start, at - start).Append(replacement);
            start = at + old.Length;
        }
        return sb.Append(s, start, s.Length - start).ToString();
    }

    public static int CountOf(string s, string sub)
    {
        if (sub.Length == 0) return s.Length + 1;
        var n = 0;
        for (var at = s.IndexOf(sub, StringComparison.Ordinal); at >= 0; n++)
            at = s.IndexOf(sub, at + sub.Length, StringComparison.Ordinal);
        return n;
    }

    /// str.title(): a letter after a cased letter is lowered, any other letter is upper-cased.
    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        var previousCased = false;
        foreach (var c in s)
        {
            var cased = char.IsUpper(c) || char.IsLower(c);
            sb.Append(cased ? (previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c)) : c);
            previousCased = cased;
        }
        return sb.ToString();
    }

    /// str.capitalize(): first character upper, the rest lower.
    public static string Capitalize(string s) =>
        s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();
}
