using Serving.Engine.Speculative;

namespace Serving.Engine.Tests.Speculative;

/// Suffix decoding's drafts: the most frequent continuation of the sequence's latest tokens, in its own tokens and in
/// earlier requests' outputs (first in, first out), as long as the match allows (spec factor, tree depth) and the
/// estimated probability holds.
public sealed class SuffixProposerTests
{
    static SuffixProposer Proposer(double factor = 1.0, double minProb = 0.1, int cached = 10000, int depth = 24) =>
        new(new SpeculativeConfig
        {
            Method = SpeculativeMethod.Suffix, NumSpeculativeTokens = 24, SuffixMaxSpecFactor = factor, SuffixMinTokenProb = minProb,
            SuffixMaxCachedRequests = cached, SuffixMaxTreeDepth = depth,
        });

    [Fact]
    public void TheSequencesOwnTokensContinueItsLatestOnesAsFarAsTheMatchAllows()
    {
        int[] tokens = [1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3];
        Assert.Equal([4, 5, 6], Proposer().Propose(tokens, null, 10));                  // a match of 3 allows 3
        Assert.Equal([4, 5, 6, 7, 8, 9], Proposer(factor: 2).Propose(tokens, null, 10));
        Assert.Equal([4, 5], Proposer(factor: 2).Propose(tokens, null, 2));             // what the caller has room for
        Assert.Equal([4, 5], Proposer(factor: 4, depth: 4).Propose(tokens, null, 10));  // match plus draft within the depth: 2 + 2
        Assert.Empty(Proposer().Propose([1, 2, 3, 4, 5, 1], null, 10));                  // one token is no match
        Assert.Empty(Proposer().Propose([7, 8, 9], null, 10));
    }

    /// Text that has repeated for longer than the depth matches all of it, which leaves no room to draft: the shorter
    /// match of depth / (1 + factor) tokens does (the reference tries its pattern's shorter suffixes too).
    [Fact]
    public void AMatchAsLongAsTheDepthDraftsThroughAShorterOne()
    {
        int[] tokens = [.. Enumerable.Repeat(new[] { 1, 2, 3 }, 20).SelectMany(t => t)];
        Assert.Equal([1, 2, 3, 1, 2, 3, 1, 2], Proposer().Propose(tokens, null, 8));   // depth 24: a match of 12, a draft of up to 12
        Assert.Equal(12, Proposer().Propose(tokens, null, 64).Length);
    }

    [Fact]
    public void EarlierOutputsGiveTheirMostFrequentContinuationWhileItIsLikelyEnough()
    {
        var proposer = Proposer(factor: 2);
        proposer.Finished([10, 11, 12, 13], null);
        proposer.Finished([10, 11, 14, 15], null);
        proposer.Finished([10, 11, 12, 16], null);
        Assert.Equal(3, proposer.NumCachedOutputs);
        // after 10 11: 12 twice, 14 once (2/3); then 13 or 16 (1/2 of those: 1/3 in all), the latest (16) first
        Assert.Equal([12, 16], proposer.Propose([5, 10, 11], null, 4));
        Assert.Equal([12], Proposer(factor: 2, minProb: 0.5).Also([10, 11, 12, 13], [10, 11, 14, 15], [10, 11, 12, 16]).Propose([5, 10, 11], null, 4));
        Assert.Empty(Proposer(minProb: 0.7).Also([10, 11, 12, 13], [10, 11, 14, 15], [10, 11, 12, 16]).Propose([5, 10, 11], null, 4));
    }

    [Fact]
    public void TheLongerMatchWinsAndTheHigherScoringSourceIsTaken()
    {
        var proposer = Proposer(factor: 2).Also([1, 2, 3, 4, 20, 21]);
        // equal scores: the sequence's own tokens continue 2 3 with 30 after a match of 2, the earlier output after 1 2 3
        Assert.Equal([4, 20], proposer.Propose([9, 2, 3, 30, 31, 1, 2, 3], null, 2));
        // where its own text continues the longer match, that is taken
        Assert.Equal([5, 6], Proposer(factor: 2).Also([2, 3, 4, 20]).Propose([1, 2, 3, 5, 6, 7, 1, 2, 3], null, 2));
    }

    [Fact]
    public void TheOldestOutputsGoFirstAndNoneAreKeptAtZero()
    {
        var proposer = Proposer(cached: 1, factor: 2).Also([10, 11, 12, 13]);
        Assert.Equal([12, 13], proposer.Propose([5, 10, 11], null, 2));
        proposer.Finished([20, 21, 22, 23], null);
        Assert.Equal(1, proposer.NumCachedOutputs);
        Assert.Empty(proposer.Propose([5, 10, 11], null, 2));
        Assert.Equal([22, 23], proposer.Propose([5, 20, 21], null, 2));
        var none = Proposer(cached: 0).Also([10, 11, 12, 13]);
        Assert.Equal(0, none.NumCachedOutputs);
        Assert.Empty(none.Propose([5, 10, 11], null, 2));
    }

    /// Answers are drawn on only by sequences of their salt (LoRA adapter and cache salt), as the prefix cache keeps them.
    [Fact]
    public void AnswersStayWithinTheirSalt()
    {
        var proposer = Proposer(factor: 2);
        proposer.Finished([10, 11, 12, 13], "tenant a");
        proposer.Finished([20, 21, 22, 23], null);
        Assert.Equal([12, 13], proposer.Propose([5, 10, 11], "tenant a", 2));
        Assert.Empty(proposer.Propose([5, 10, 11], "tenant b", 2));
        Assert.Empty(proposer.Propose([5, 10, 11], null, 2));
        Assert.Equal([22, 23], proposer.Propose([5, 20, 21], null, 2));
        Assert.Empty(proposer.Propose([5, 20, 21], "tenant a", 2));
    }

    /// Random outputs and sequences: a draft is always a continuation some place has after the sequence's latest
    /// tokens, never longer than the room, the factor or the depth allow.
    [Fact]
    public void EveryDraftIsAContinuationSeenAfterTheSameTokens()
    {
        var random = new Random(7);
        var proposer = Proposer(factor: 1.5, cached: 20);
        var outputs = new List<int[]>();
        for (var round = 0; round < 400; round++)
        {
            var output = Enumerable.Range(0, random.Next(2, 40)).Select(_ => random.Next(6)).ToArray();
            proposer.Finished(output, null);
            outputs.Add(output);
            if (outputs.Count > 20) outputs.RemoveAt(0);
            var sequence = Enumerable.Range(0, random.Next(3, 50)).Select(_ => random.Next(6)).ToArray();
            var room = random.Next(1, 12);
            var draft = proposer.Propose(sequence, null, room);
            Assert.True(draft.Length <= room);
            if (draft.Length == 0) continue;
            // the sequence's last two tokens, then the draft, occur in some kept output or earlier in the sequence itself
            int[] wanted = [sequence[^2], sequence[^1], .. draft];
            bool Contains(int[] text, int before) => Enumerable.Range(0, Math.Max(0, before - wanted.Length + 1))
                .Any(start => text.AsSpan(start, wanted.Length).SequenceEqual(wanted));
            Assert.True(outputs.Any(o => Contains(o, o.Length)) || Contains(sequence, sequence.Length),
                $"draft [{string.Join(' ', draft)}] after [{string.Join(' ', sequence)}]");
        }
    }
}

static class SuffixProposerTesting
{
    public static SuffixProposer Also(this SuffixProposer proposer, params int[][] outputs)
    {
        foreach (var output in outputs) proposer.Finished(output, null);
        return proposer;
    }
}
