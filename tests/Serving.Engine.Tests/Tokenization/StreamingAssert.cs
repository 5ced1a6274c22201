using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization;

internal static class StreamingAssert
{
    /// Every Push's delta, then Flush's, in order.
    public static List<string> Stream(IncrementalDetokenizer detokenizer, IEnumerable<int> ids)
    {
        var deltas = ids.Select(detokenizer.Push).ToList();
        deltas.Add(detokenizer.Flush());
        return deltas;
    }

    /// A delta never ends inside a character: no lone UTF-16 surrogate (a half-decoded code point).
    public static void WholeCharacters(string delta)
    {
        for (var i = 0; i < delta.Length; i++)
        {
            if (char.IsHighSurrogate(delta[i]))
            {
                Assert.True(i + 1 < delta.Length && char.IsLowSurrogate(delta[i + 1]), $"lone high surrogate in {delta}");
                i++;
            }
            else
            {
                Assert.False(char.IsLowSurrogate(delta[i]), $"lone low surrogate in {delta}");
            }
        }
    }
}
