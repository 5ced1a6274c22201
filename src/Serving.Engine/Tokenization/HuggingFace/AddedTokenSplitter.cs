using System.Text;
using System.Text.RegularExpressions;

namespace Serving.Engine.Tokenization.HuggingFace;

/// A piece of the input: either plain text still to tokenize, or an added token already recognised.
/// Offset: where the piece starts in the text it was cut from.
internal readonly record struct TextSegment(int Offset, string Text, int? TokenId);

/// Cuts text on added tokens, as tokenizers' AddedVocabulary does: at each position the longest token wins,
/// lstrip/rstrip tokens take the whitespace beside them, single_word tokens match only as whole words.
internal sealed class AddedTokenSplitter
{
    readonly Regex? _regex;
    readonly int[] _groupTokenIds;

    public AddedTokenSplitter(IEnumerable<AddedToken> tokens)
    {
        // Longest first: .NET alternation takes the first alternative that matches, the reference the longest.
        var ordered = tokens.Where(t => t.Content.Length > 0).OrderByDescending(t => t.Content.Length).ToList();
        _groupTokenIds = ordered.Select(t => t.Id).ToArray();
        if (ordered.Count > 0)
            _regex = new Regex(string.Join("|", ordered.Select(Alternative)), RegexOptions.CultureInvariant | RegexOptions.Compiled);
    }

    public IReadOnlyList<TextSegment> Split(string text)
    {
        var segments = new List<TextSegment>();
        var position = 0;
        if (_regex is not null)
        {
            for (var match = _regex.Match(text); match.Success; match = match.NextMatch())
            {
                AddText(segments, text, position, match.Index);
                segments.Add(new TextSegment(match.Index, match.Value, TokenIdOf(match)));
                position = match.Index + match.Length;
            }
        }
        AddText(segments, text, position, text.Length);
        return segments;
    }

    static void AddText(List<TextSegment> segments, string text, int start, int end)
    {
        if (end > start) segments.Add(new TextSegment(start, text[start..end], null));
    }

    int TokenIdOf(Match match)
    {
        for (var group = 1; group < match.Groups.Count; group++)
            if (match.Groups[group].Success) return _groupTokenIds[group - 1];
        throw new InvalidOperationException("added-token match without a group");
    }

    static string Alternative(AddedToken token)
    {
        var pattern = new StringBuilder("(");
        if (token.SingleWord) pattern.Append(@"(?<!\w)");
        if (token.LStrip) pattern.Append(@"\s*");
        pattern.Append(Regex.Escape(token.Content));
        if (token.RStrip) pattern.Append(@"\s*");
        if (token.SingleWord) pattern.Append(@"(?!\w)");
        return pattern.Append(')').ToString();
    }
}
