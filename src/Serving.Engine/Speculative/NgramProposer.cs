namespace Serving.Engine.Speculative;

/// Prompt lookup decoding (Saxena 2023; vLLM's "ngram" method): the draft for a sequence is what followed the most
/// recent earlier occurrence of its last n tokens, for the largest n in [min, max] that occurs. Text that repeats
/// its context (code edits, quotes, summaries, structured data) gets long runs of correct drafts for free; other text
/// gets none and decodes as before.
internal static class NgramProposer
{
    /// maxTokens draft tokens continuing tokens; empty when no n-gram of at least config.PromptLookupMin of its last
    /// tokens occurred before. One backward pass over the earlier places of the last token (a vectorized search): at
    /// each, the match length is grown from the back until it reaches PromptLookupMax or a token differs; the latest
    /// place with the longest match wins.
    /// The draft copies what followed that position, and where the copy reaches the end of the tokens it goes on
    /// copying its own beginning (an overlapping copy, as LZ77 does): text that repeats with a short period gets a
    /// whole draft of its next period.
    public static int[] Propose(ReadOnlySpan<int> tokens, SpeculativeConfig config, int maxTokens)
    {
        var count = tokens.Length;
        var (min, max) = (config.PromptLookupMin, config.PromptLookupMax);
        if (maxTokens <= 0 || count <= min)
            return [];
        var (bestEnd, bestLength) = (-1, 0);
        // end: the position just after an earlier occurrence of the last token; the suffix itself ends at count
        for (var end = tokens[..(count - 1)].LastIndexOf(tokens[^1]) + 1; end >= min; end = tokens[..(end - 1)].LastIndexOf(tokens[^1]) + 1)
        {
            var length = 1;
            var limit = Math.Min(max, end);
            while (length < limit && tokens[end - 1 - length] == tokens[count - 1 - length])
                length++;
            if (length > bestLength)
            {
                (bestEnd, bestLength) = (end, length);
                if (length == max)
                    break;
            }
        }
        if (bestLength < min)
            return [];
        var drafts = new int[maxTokens];
        for (var i = 0; i < maxTokens; i++)
            drafts[i] = bestEnd + i < count ? tokens[bestEnd + i] : drafts[bestEnd + i - count];
        return drafts;
    }
}
