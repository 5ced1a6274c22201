using Serving.Engine.Tokenization;

namespace Serving.Engine.Sampling;

/// vLLM's bad_words as token ids: each word as it starts a text, and as it follows a space when the tokenizer writes
/// that as a different first token of the same length (a word in the middle of a text), so both are banned.
internal static class BadWordTokens
{
    public static IReadOnlyList<int[]> Of(IReadOnlyList<string> words, TextTokenizer tokenizer)
    {
        var result = new List<int[]>();
        foreach (var word in words)
        {
            var alone = tokenizer.Encode(word.TrimStart(), addSpecialTokens: false).ToArray();
            if (alone.Length == 0) continue;
            result.Add(alone);
            var spaced = tokenizer.Encode(" " + word.TrimStart(), addSpecialTokens: false).ToArray();
            if (spaced.Length == alone.Length && spaced[0] != alone[0]) result.Add(spaced);
        }
        return result;
    }

    /// The tokens the words ban after output: a one-token word's token always, a longer word's last token where the
    /// output ends with the tokens before it.
    public static IEnumerable<int> Banned(IReadOnlyList<int[]> words, IReadOnlyList<int> output)
    {
        foreach (var word in words)
        {
            var before = word.Length - 1;
            if (before <= output.Count && Enumerable.Range(0, before).All(i => output[output.Count - before + i] == word[i]))
                yield return word[^1];
        }
    }
}
