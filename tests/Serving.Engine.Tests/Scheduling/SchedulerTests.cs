using Serving.Engine.KVCache;
using Serving.Engine.Scheduling;
using static Serving.Engine.Tests.Scheduling.SchedulerTestKit;

namespace Serving.Engine.Tests.Scheduling;

public sealed class SchedulerTests
{
    [Fact]
    public void DecodeTokensAndAPrefillShareAStep()
    {
        var engine = new SimulatedEngine(NewScheduler());
        var a = engine.Scheduler.Add(Request("a", promptLength: 3, maxTokens: 4))[0];
        var (first, outputs) = engine.Step();
        Assert.Equal((0, 3, true), (EntryOf(first, a).StartPosition, EntryOf(first, a).NumNewTokens, EntryOf(first, a).SamplesToken));
        Assert.Single(outputs);

        var b = engine.Scheduler.Add(Request("b", promptLength: 5, maxTokens: 4))[0];
        var (second, _) = engine.Step();
        Assert.Equal([a, b], second.Entries.Select(entry => entry.Sequence)); // running first, then waiting
        Assert.Equal((3, 1), (EntryOf(second, a).StartPosition, EntryOf(second, a).NumNewTokens));
        Assert.Equal((0, 5), (EntryOf(second, b).StartPosition, EntryOf(second, b).NumNewTokens));
        Assert.Equal(6, second.NumTokens);
    }

    [Fact]
    public void ALongPromptIsChunkedUnderATinyTokenBudgetAndSamplesOnlyAtItsEnd()
    {
        var engine = new SimulatedEngine(NewScheduler(maxNumBatchedTokens: 4));
        var a = engine.Scheduler.Add(Request("a", promptLength: 10, maxTokens: 3))[0];
        var chunks = new List<(int Start, int Count, int Outputs)>();
        for (var i = 0; i < 3; i++)
        {
            var (batch, outputs) = engine.Step();
            chunks.Add((EntryOf(batch, a).StartPosition, EntryOf(batch, a).NumNewTokens, outputs.Count));
        }
        Assert.Equal([(0, 4, 0), (4, 4, 0), (8, 2, 1)], chunks);
        Assert.Equal(10, a.NumComputedTokens);
        Assert.Equal(1, a.NumOutputTokens);

        var b = engine.Scheduler.Add(Request("b", promptLength: 9, maxTokens: 1, firstToken: 200))[0];
        var (mixed, _) = engine.Step();
        Assert.Equal((10, 1), (EntryOf(mixed, a).StartPosition, EntryOf(mixed, a).NumNewTokens));
        Assert.Equal((0, 3), (EntryOf(mixed, b).StartPosition, EntryOf(mixed, b).NumNewTokens));
        engine.RunUntilIdle();
        Assert.Equal(SimulatedEngine.ReferenceOutput(a, new HashSet<int>(), 128), a.OutputTokenIds);
        Assert.Equal(SimulatedEngine.ReferenceOutput(b, new HashSet<int>(), 128), b.OutputTokenIds);
    }

    /// --long-prefill-token-threshold 6: two long prompts prefill side by side, 6 tokens each per step, and a short
    /// prompt behind them starts in the first step instead of waiting for the budget they would take.
    [Fact]
    public void ALongPrefillThresholdLetsPromptsPrefillSideBySide()
    {
        var scheduler = new Scheduler(new SchedulerOptions
        {
            MaxNumBatchedTokens = 16, MaxModelLen = 128, LongPrefillTokenThreshold = 6, EosTokenIds = new HashSet<int> { Eos },
        }, new KVCacheManager(64, 4, true));
        var engine = new SimulatedEngine(scheduler);
        var a = scheduler.Add(Request("a", promptLength: 20, maxTokens: 2))[0];
        var b = scheduler.Add(Request("b", promptLength: 20, maxTokens: 2, firstToken: 200))[0];
        var c = scheduler.Add(Request("c", promptLength: 3, maxTokens: 2, firstToken: 300))[0];
        var (first, _) = engine.Step();
        Assert.Equal([(a, 0, 6), (b, 0, 6), (c, 0, 3)], first.Entries.Select(e => (e.Sequence, e.StartPosition, e.NumNewTokens)));
        var (second, _) = engine.Step();
        Assert.Equal([(a, 6, 6), (b, 6, 6), (c, 3, 1)], second.Entries.Select(e => (e.Sequence, e.StartPosition, e.NumNewTokens)));
        engine.RunUntilIdle();
        foreach (var sequence in new[] { a, b, c })
            Assert.Equal(SimulatedEngine.ReferenceOutput(sequence, new HashSet<int> { Eos }, 128), sequence.OutputTokenIds);
    }

    /// A model that attends both ways (WholePromptsInOneStep): a prompt the step's leftover budget cannot take whole waits
    /// for the next step instead of starting a chunk; with chunking allowed the same prompt starts in 6 tokens.
    [Fact]
    public void WholePromptsInOneStepNeverStartAChunk()
    {
        foreach (var whole in new[] { true, false })
        {
            var scheduler = new Scheduler(new SchedulerOptions
            {
                MaxNumBatchedTokens = 16, MaxModelLen = 16, WholePromptsInOneStep = whole, EosTokenIds = new HashSet<int> { Eos },
            }, new KVCacheManager(64, 4, false));
            var engine = new SimulatedEngine(scheduler);
            var a = scheduler.Add(Request("a", promptLength: 10, maxTokens: 2))[0];
            var b = scheduler.Add(Request("b", promptLength: 10, maxTokens: 2, firstToken: 200))[0];
            var (first, _) = engine.Step();
            Assert.Equal(whole ? [(a, 0, 10)] : [(a, 0, 10), (b, 0, 6)], first.Entries.Select(e => (e.Sequence, e.StartPosition, e.NumNewTokens)));
            if (!whole) continue;
            var (second, _) = engine.Step();
            Assert.Contains((b, 0, 10), second.Entries.Select(e => (e.Sequence, e.StartPosition, e.NumNewTokens)));
        }
        Assert.Throws<ArgumentException>(() => new SchedulerOptions { MaxNumBatchedTokens = 8, MaxModelLen = 16, WholePromptsInOneStep = true }.Validate());
    }

    [Fact]
    public void ASecondIdenticalPromptComputesOnlyTheUncachedTail()
    {
        var engine = new SimulatedEngine(NewScheduler(blockSize: 4));
        var first = engine.Scheduler.Add(Request("first", promptLength: 10, maxTokens: 3))[0];
        engine.RunUntilIdle();

        var second = engine.Scheduler.Add(Request("second", promptLength: 10, maxTokens: 3))[0];
        var (batch, _) = engine.Step();
        Assert.Equal((8, 2), (EntryOf(batch, second).StartPosition, EntryOf(batch, second).NumNewTokens));
        Assert.Equal(8, second.NumCachedTokens);
        engine.RunUntilIdle();

        var stats = engine.Scheduler.GetStats();
        Assert.Equal(20, stats.PrefixCacheQueries);
        Assert.Equal(8, stats.PrefixCacheHits);
        Assert.Equal(10 + 2 + 2 * 2, stats.NumComputedTokens); // 10 + 2 prompt tokens, 2 decode steps each
        Assert.Equal(first.OutputTokenIds, second.OutputTokenIds);
    }

    [Fact]
    public void WithPrefixCachingOffTheSecondPromptComputesEverything()
    {
        var engine = new SimulatedEngine(NewScheduler(prefixCaching: false));
        engine.Scheduler.Add(Request("first", promptLength: 10, maxTokens: 1));
        engine.RunUntilIdle();
        var second = engine.Scheduler.Add(Request("second", promptLength: 10, maxTokens: 1))[0];
        var (batch, _) = engine.Step();
        Assert.Equal((0, 10), (EntryOf(batch, second).StartPosition, EntryOf(batch, second).NumNewTokens));
        Assert.Equal(0, engine.Scheduler.GetStats().PrefixCacheHits);
    }

    [Fact]
    public void TheNewestSequenceIsPreemptedWhenBlocksRunOutAndFinishesLater()
    {
        // 6 blocks of 2 tokens; each request ends at 4 + 8 = 12 tokens = 6 blocks: they cannot both finish at once.
        var engine = new SimulatedEngine(NewScheduler(numBlocks: 6, blockSize: 2, prefixCaching: false));
        var older = engine.Scheduler.Add(Request("older", promptLength: 4, maxTokens: 8))[0];
        var newer = engine.Scheduler.Add(Request("newer", promptLength: 4, maxTokens: 8, firstToken: 300))[0];
        var newerWasPreempted = false;
        while (engine.Scheduler.HasUnfinishedSequences)
        {
            engine.Step();
            Assert.NotEqual(SequenceStatus.Preempted, older.Status);
            newerWasPreempted |= newer.Status == SequenceStatus.Preempted;
            PoolInvariants.Check(engine.Scheduler);
        }
        Assert.True(newerWasPreempted);
        Assert.True(engine.Scheduler.GetStats().NumPreemptions >= 1);
        Assert.Equal(FinishReason.Length, newer.FinishReason);
        Assert.Equal(SimulatedEngine.ReferenceOutput(older, new HashSet<int>(), 128), older.OutputTokenIds);
        Assert.Equal(SimulatedEngine.ReferenceOutput(newer, new HashSet<int>(), 128), newer.OutputTokenIds);
        PoolInvariants.CheckAllFree(engine.Scheduler);
    }

    [Fact]
    public void APreemptedSequenceGoesBackToTheFrontOfWaiting()
    {
        var engine = new SimulatedEngine(NewScheduler(numBlocks: 4, blockSize: 2, maxNumSeqs: 2, prefixCaching: false));
        var a = engine.Scheduler.Add(Request("a", promptLength: 3, maxTokens: 5))[0];
        var b = engine.Scheduler.Add(Request("b", promptLength: 3, maxTokens: 5, firstToken: 200))[0];
        var c = engine.Scheduler.Add(Request("c", promptLength: 3, maxTokens: 5, firstToken: 300))[0];
        while (b.Status != SequenceStatus.Preempted)
            engine.Step();
        Assert.Equal([b, c], engine.Scheduler.Waiting);
        Assert.Equal(0, b.NumComputedTokens);
        engine.RunUntilIdle();
        Assert.All(new[] { a, b, c }, s => Assert.Equal(5, s.NumOutputTokens));
    }
}
