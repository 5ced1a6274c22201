namespace Serving.Engine.Tokenization.HuggingFace;

/// What happens to the delimiters a pattern matched (tokenizers' SplitDelimiterBehavior).
internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// Turns the matches of a pattern in a text into the spans the text is cut into, as tokenizers does.
internal static class SplitSpans
{
    /// matches: non-empty (start, length), left to right. Returns non-empty (start, end) spans.
    public static List<(int Start, int End)> Apply(string text, List<(int Start, int Length)> matches, SplitBehavior behavior, bool invert)
    {
        var parts = Alternate(text.Length, matches, invert);
        var spans = behavior switch
        {
            SplitBehavior.Removed => parts.Where(p => !p.IsDelimiter).Select(p => (p.Start, p.End)).ToList(),
            SplitBehavior.Isolated => parts.Select(p => (p.Start, p.End)).ToList(),
            SplitBehavior.MergedWithPrevious => MergeWithPrevious(parts),
            SplitBehavior.MergedWithNext => MergeWithNext(parts),
            SplitBehavior.Contiguous => MergeRuns(parts),
            _ => throw new ArgumentOutOfRangeException(nameof(behavior)),
        };
        return spans;
    }

    /// The text as consecutive parts, each a delimiter (a match, or a gap when inverted) or not.
    static List<(int Start, int End, bool IsDelimiter)> Alternate(int length, List<(int Start, int Length)> matches, bool invert)
    {
        var parts = new List<(int, int, bool)>();
        var position = 0;
        foreach (var (start, matchLength) in matches)
        {
            if (start > position) parts.Add((position, start, invert));
            parts.Add((start, start + matchLength, !invert));
            position = start + matchLength;
        }
        if (position < length) parts.Add((position, length, invert));
        return parts;
    }

    /// A delimiter joins the part before it, unless that part is a delimiter too.
    static List<(int Start, int End)> MergeWithPrevious(List<(int Start, int End, bool IsDelimiter)> parts)
    {
        var spans = new List<(int Start, int End)>();
        var previousDelimiter = false;
        foreach (var part in parts)
        {
            if (part.IsDelimiter && !previousDelimiter && spans.Count > 0) spans[^1] = (spans[^1].Start, part.End);
            else spans.Add((part.Start, part.End));
            previousDelimiter = part.IsDelimiter;
        }
        return spans;
    }

    /// A delimiter joins the part after it, unless that part is a delimiter too (walked right to left).
    static List<(int Start, int End)> MergeWithNext(List<(int Start, int End, bool IsDelimiter)> parts)
    {
        var spans = new List<(int Start, int End)>();
        var nextDelimiter = false;
        for (var i = parts.Count - 1; i >= 0; i--)
        {
            var part = parts[i];
            if (part.IsDelimiter && !nextDelimiter && spans.Count > 0) spans[^1] = (part.Start, spans[^1].End);
            else spans.Add((part.Start, part.End));
            nextDelimiter = part.IsDelimiter;
        }
        spans.Reverse();
        return spans;
    }

    /// Runs of parts of the same kind become one span.
    static List<(int Start, int End)> MergeRuns(List<(int Start, int End, bool IsDelimiter)> parts)
    {
        var spans = new List<(int Start, int End)>();
        var previousDelimiter = false;
        foreach (var part in parts)
        {
            if (part.IsDelimiter == previousDelimiter && spans.Count > 0) spans[^1] = (spans[^1].Start, part.End);
            else spans.Add((part.Start, part.End));
            previousDelimiter = part.IsDelimiter;
        }
        return spans;
    }
}
