using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Serving.Engine.Tokenization.HuggingFace;

/// The {"String": ...} or {"Regex": ...} pattern of Split / Replace, matched over code points as the
/// reference's Oniguruma does. .NET's regex sees UTF-16 units, so \p{L} would not match a letter outside the
/// BMP (a surrogate pair): text with surrogates is matched on a copy where each such code point is replaced by
/// one BMP stand-in of the same class (letter, number, other), and the match positions are mapped back.
internal sealed class TextPattern
{
    const char LetterStandIn = '\u3400';  // CJK ideograph (Lo)
    const char NumberStandIn = '\u0660';  // Arabic-Indic digit zero (Nd)
    const char OtherStandIn = '\uE000';   // private use (Co)

    readonly Regex _regex;

    TextPattern(Regex regex) => _regex = regex;

    public static TextPattern Literal(string text) => new(new Regex(Regex.Escape(text), RegexOptions.CultureInvariant));

    public static TextPattern FromRegex(string pattern) =>
        new(new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled));

    public static TextPattern FromJson(JsonElement json)
    {
        if (json.TryGetProperty("String", out var literal)) return Literal(literal.GetString()!);
        if (json.TryGetProperty("Regex", out var regex)) return FromRegex(regex.GetString()!);
        throw new NotSupportedException($"tokenizer.json: pattern {json.GetRawText()} is neither String nor Regex");
    }

    /// Non-empty matches, left to right, as (start, length) in text.
    public List<(int Start, int Length)> Matches(string text)
    {
        var matches = new List<(int, int)>();
        if (!HasSurrogates(text))
        {
            foreach (Match match in _regex.Matches(text))
                if (match.Length > 0) matches.Add((match.Index, match.Length));
            return matches;
        }
        var (standIn, originalIndex) = WithStandIns(text);
        foreach (Match match in _regex.Matches(standIn))
        {
            if (match.Length == 0) continue;
            var start = originalIndex[match.Index];
            matches.Add((start, originalIndex[match.Index + match.Length] - start));
        }
        return matches;
    }

    public string ReplaceAll(string text, string content)
    {
        var result = new StringBuilder(text.Length);
        var position = 0;
        foreach (var (start, length) in Matches(text))
        {
            result.Append(text, position, start - position).Append(content);
            position = start + length;
        }
        return result.Append(text, position, text.Length - position).ToString();
    }

    static bool HasSurrogates(string text)
    {
        foreach (var c in text)
            if (char.IsSurrogate(c)) return true;
        return false;
    }

    /// originalIndex[i]: the index in text of stand-in char i; one extra entry maps the end.
    static (string StandIn, int[] OriginalIndex) WithStandIns(string text)
    {
        var standIn = new StringBuilder(text.Length);
        var originalIndex = new List<int>(text.Length + 1);
        for (var i = 0; i < text.Length; i++)
        {
            originalIndex.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                standIn.Append(StandInFor(char.ConvertToUtf32(text[i], text[i + 1])));
                i++;
            }
            else
            {
                standIn.Append(text[i]);
            }
        }
        originalIndex.Add(text.Length);
        return (standIn.ToString(), originalIndex.ToArray());
    }

    static char StandInFor(int codePoint) => CharUnicodeInfo.GetUnicodeCategory(codePoint) switch
    {
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => LetterStandIn,
        UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => NumberStandIn,
        _ => OtherStandIn,
    };
}
