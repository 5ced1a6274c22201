using Serving.Engine.Speculative;

namespace Serving.Engine.Tests.Speculative;

public sealed class NgramProposerTests
{
    static SpeculativeConfig Config(int min, int max, int k = 4) => new() { NumSpeculativeTokens = k, PromptLookupMin = min, PromptLookupMax = max };

    [Fact]
    public void TheLongestMatchWinsOverALaterShorterOne()
    {
        //        0  1  2  3  4  5  6  7  8  9 10 11
        int[] t = [5, 6, 7, 8, 9, 1, 7, 2, 3, 5, 6, 7];
        // "6 7" (and "5 6 7") occurred at 0..2, followed by 8 9; "7" alone occurred later, at 6, followed by 2 3
        Assert.Equal([8, 9, 1, 7], NgramProposer.Propose(t, Config(1, 3), 4));
        // allowed only 1-grams: the latest "7" that is not the last token itself
        Assert.Equal([2, 3, 5], NgramProposer.Propose(t, Config(1, 1), 3));
    }

    [Fact]
    public void AmongEqualMatchesTheLatestWins()
    {
        int[] t = [1, 2, 3, 9, 1, 2, 4, 1, 2];
        Assert.Equal([4, 1], NgramProposer.Propose(t, Config(2, 2), 2));
    }

    [Fact]
    public void NoMatchOfAtLeastTheMinimumProposesNothing()
    {
        int[] t = [1, 2, 3, 4, 5, 3];
        Assert.Equal([4, 5], NgramProposer.Propose(t, Config(1, 2), 2));
        Assert.Equal([4, 5, 3, 4], NgramProposer.Propose(t, Config(1, 2), 4));
        Assert.Empty(NgramProposer.Propose(t, Config(2, 3), 2));
        Assert.Empty(NgramProposer.Propose([1, 2, 3], Config(1, 3), 4));
        Assert.Empty(NgramProposer.Propose([7], Config(1, 3), 4));
        Assert.Empty(NgramProposer.Propose([7, 7, 7], Config(1, 3), 0));
    }

    [Fact]
    public void ACopyThatReachesTheEndGoesOnWithItself()
    {
        // a run of one token: the latest earlier "7 7" ends one before the end; its copy repeats the run
        Assert.Equal([7, 7, 7, 7], NgramProposer.Propose([7, 7, 7], Config(1, 2), 4));
        // a period-3 text: the match three back continues with the suffix, then with the draft's own start
        Assert.Equal([1, 2, 3, 1, 2], NgramProposer.Propose([1, 2, 3, 1, 2, 3], Config(1, 2), 5));
        // what followed the match is copied as far as maxTokens only
        Assert.Equal([8, 9], NgramProposer.Propose([5, 8, 9, 4, 4, 5], Config(1, 1), 2));
    }

    /// Against a direct search: for n from max down to min, the latest earlier occurrence of the last n tokens.
    [Fact]
    public void RandomTextsAgreeWithADirectSearch()
    {
        var rng = new Random(7);
        for (var trial = 0; trial < 3000; trial++)
        {
            var tokens = Enumerable.Range(0, rng.Next(1, 40)).Select(_ => rng.Next(0, 4)).ToArray();
            var min = rng.Next(1, 4);
            var config = Config(min, min + rng.Next(0, 3));
            var k = rng.Next(1, 6);
            Assert.Equal(Direct(tokens, config, k), NgramProposer.Propose(tokens, config, k));
        }
    }

    static int[] Direct(int[] tokens, SpeculativeConfig config, int k)
    {
        for (var n = config.PromptLookupMax; n >= config.PromptLookupMin; n--)
        {
            if (n >= tokens.Length) continue;
            var suffix = tokens[^n..];
            for (var start = tokens.Length - n - 1; start >= 0; start--)
                if (tokens.AsSpan(start, n).SequenceEqual(suffix))
                {
                    // text[count + i] predicted as text[start + n + i], the prediction read back where it overlaps
                    var text = tokens.ToList();
                    for (var i = 0; i < k; i++) text.Add(text[start + n + i]);
                    return text.Skip(tokens.Length).ToArray();
                }
        }
        return [];
    }
}
