using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using static Serving.Engine.Tests.Scheduling.SchedulerTestKit;

namespace Serving.Engine.Tests.Scheduling;

public sealed class PostprocessTests
{
    /// Admits one request with these sampling parameters and runs its prompt, sampling firstToken.
    static (Scheduler Scheduler, Sequence Sequence, SequenceOutput Output) Prefill(SamplingParams sampling, int firstToken)
    {
        var scheduler = NewScheduler();
        var sequence = scheduler.Add(Request("r", 4, 1) with { Sampling = sampling })[0];
        var output = Assert.Single(scheduler.Postprocess(scheduler.Schedule(), [firstToken]));
        return (scheduler, sequence, output);
    }

    static SequenceOutput Decode(Scheduler scheduler, int token) => Assert.Single(scheduler.Postprocess(scheduler.Schedule(), [token]));

    [Fact]
    public void EosStopsAndFreesTheBlocks()
    {
        var (scheduler, sequence, output) = Prefill(SamplingParams.Greedy with { MaxTokens = 8 }, Eos);
        Assert.Equal(FinishReason.Stop, output.FinishReason);
        Assert.Equal([Eos], sequence.OutputTokenIds);
        Assert.False(scheduler.HasUnfinishedSequences);
        PoolInvariants.CheckAllFree(scheduler);
    }

    [Fact]
    public void IgnoreEosKeepsGoingUntilMaxTokens()
    {
        var (scheduler, _, output) = Prefill(SamplingParams.Greedy with { MaxTokens = 2, IgnoreEos = true }, Eos);
        Assert.Null(output.FinishReason);
        Assert.Equal(FinishReason.Length, Decode(scheduler, Eos).FinishReason);
    }

    [Fact]
    public void StopTokensCountOnlyAfterMinTokens()
    {
        var sampling = SamplingParams.Greedy with { MaxTokens = 8, MinTokens = 2, StopTokenIds = [42] };
        var (scheduler, _, output) = Prefill(sampling, 42);
        Assert.Null(output.FinishReason);
        Assert.Equal(FinishReason.Stop, Decode(scheduler, 42).FinishReason);
    }

    [Fact]
    public void TheModelContextEndsASequenceWithLength()
    {
        var scheduler = NewScheduler(maxModelLen: 6);
        var sequence = scheduler.Add(Request("r", 4, 2))[0];
        Assert.Null(Assert.Single(scheduler.Postprocess(scheduler.Schedule(), [7])).FinishReason);
        Assert.Equal(FinishReason.Length, Decode(scheduler, 7).FinishReason);
        Assert.Equal(6, sequence.NumTokens);
    }

    [Fact]
    public void FinishFromTheEngineFreesTheBlocks()
    {
        var (scheduler, sequence, _) = Prefill(SamplingParams.Greedy with { MaxTokens = 8 }, 7);
        scheduler.Finish(sequence, FinishReason.Stop); // a stop string matched by the detokenizer
        Assert.Equal(FinishReason.Stop, sequence.FinishReason);
        PoolInvariants.CheckAllFree(scheduler);
    }

    [Fact]
    public void TheSampledTokensMustMatchTheSamplingEntries()
    {
        var scheduler = NewScheduler();
        scheduler.Add(Request("r", 4, 2));
        var batch = scheduler.Schedule();
        Assert.Throws<ArgumentException>(() => scheduler.Postprocess(batch, []));
    }

    [Fact]
    public void StatsCountSequencesBlocksAndTokens()
    {
        var scheduler = NewScheduler(numBlocks: 10, blockSize: 4, maxNumSeqs: 1);
        scheduler.Add(Request("a", 5, 3));
        scheduler.Add(Request("b", 5, 3, firstToken: 200));
        scheduler.Postprocess(scheduler.Schedule(), [7]);

        var stats = scheduler.GetStats();
        Assert.Equal((1, 1), (stats.NumRunning, stats.NumWaiting));
        Assert.Equal((10, 8), (stats.NumBlocks, stats.NumFreeBlocks));
        Assert.Equal(0.2, stats.KVUsage, 6);
        Assert.Equal((5L, 1L), (stats.NumComputedTokens, stats.NumGeneratedTokens));
    }
}
