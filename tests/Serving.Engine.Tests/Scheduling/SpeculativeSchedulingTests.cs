using Serving.Engine.KVCache;
using Serving.Engine.Scheduling;
using Serving.Engine.Speculative;
using static Serving.Engine.Tests.Scheduling.SchedulerTestKit;

namespace Serving.Engine.Tests.Scheduling;

/// Drafts take only what the running sequences' own tokens leave: never a block or a token one of them needs, never
/// a preemption; refused drafts' blocks go back to the pool; kept drafts are counted only up to a stop.
public sealed class SpeculativeSchedulingTests
{
    static Scheduler New(int numBlocks, int maxNumBatchedTokens, int longPrefill = 0, int? disableBy = null) => new(new SchedulerOptions
    {
        MaxNumBatchedTokens = maxNumBatchedTokens, MaxModelLen = 128, LongPrefillTokenThreshold = longPrefill,
        EosTokenIds = new HashSet<int> { Eos },
        Speculative = new SpeculativeConfig { NumSpeculativeTokens = 5, PromptLookupMin = 1, PromptLookupMax = 1, DisableByBatchSize = disableBy },
    }, new KVCacheManager(numBlocks, 4, enablePrefixCaching: false));

    [Theory, InlineData(false), InlineData(true)]
    public void DraftsDoNotPreemptALaterRunningPrefill(bool withDrafts)
    {
        var scheduler = New(numBlocks: 5, maxNumBatchedTokens: 64, longPrefill: 8);
        var a = scheduler.Add(Request("a", promptLength: 3, maxTokens: 10))[0];
        var b = scheduler.Add(Request("b", promptLength: 16, maxTokens: 2, firstToken: 200))[0];
        scheduler.Postprocess(scheduler.Schedule(), [50]);     // a: 1 block, b: 2 blocks, 2 free
        a.DraftTokenIds = withDrafts ? [60, 61, 62, 63] : [];   // would take one more block
        var second = scheduler.Schedule();
        Assert.Equal(0, scheduler.GetStats().NumPreemptions);
        Assert.Contains(second.Entries, e => e.Sequence == b && e.StartPosition == 8 && e.NumNewTokens == 8);
    }

    [Theory, InlineData(false), InlineData(true)]
    public void DraftsDoNotCrowdOutALaterSequencesOwnToken(bool withDrafts)
    {
        var scheduler = New(numBlocks: 64, maxNumBatchedTokens: 5);
        var a = scheduler.Add(Request("a", promptLength: 2, maxTokens: 10))[0];
        var b = scheduler.Add(Request("b", promptLength: 2, maxTokens: 10, firstToken: 200))[0];
        scheduler.Postprocess(scheduler.Schedule(), [50, 51]);
        a.DraftTokenIds = withDrafts ? [60, 61, 62, 63] : [];
        var step = scheduler.Schedule();
        Assert.Contains(step.Entries, e => e.Sequence == b && e.NumNewTokens == 1);
        // a gets the drafts the budget still holds after both own tokens: 5 - 2
        Assert.Equal(withDrafts ? [60, 61, 62] : [], step.Entries.Single(e => e.Sequence == a).Drafts);
    }

    [Fact]
    public void DraftsAfterAStopTokenAreNotCountedAsKept()
    {
        var scheduler = New(numBlocks: 64, maxNumBatchedTokens: 64);
        var a = scheduler.Add(Request("a", 2, 10) with { Sampling = Engine.Sampling.SamplingParams.Greedy with { MaxTokens = 10 } })[0];
        scheduler.Postprocess(scheduler.Schedule(), [50]);
        a.DraftTokenIds = [Eos, 61, 62];
        Assert.Single(scheduler.Postprocess(scheduler.Schedule(), [Eos, 61, 62, 63]));
        Assert.Equal((1, 3), ((int)scheduler.GetStats().Speculation.NumAcceptedTokens, (int)scheduler.GetStats().Speculation.NumDraftTokens));
    }

    /// A stop string met at the first kept draft (the engine's text side calls Finish with the output's length): the
    /// drafts after it leave the output, the generated count and the kept count.
    [Fact]
    public void DraftsKeptAfterAStopStringAreNotCountedAsKept()
    {
        var scheduler = New(numBlocks: 64, maxNumBatchedTokens: 64);
        var a = scheduler.Add(Request("a", promptLength: 2, maxTokens: 10))[0];
        scheduler.Postprocess(scheduler.Schedule(), [50]);
        a.DraftTokenIds = [60, 61, 62];
        var outputs = scheduler.Postprocess(scheduler.Schedule(), [60, 61, 62, 63]);
        scheduler.Finish(a, FinishReason.Stop, outputs[0].NumOutputTokens);
        Assert.Equal([50, 60], a.OutputTokenIds);
        var stats = scheduler.GetStats();
        Assert.Equal(2, stats.NumGeneratedTokens);
        Assert.Equal(1, stats.Speculation.NumAcceptedTokens);
        Assert.Equal([1L, 0, 0, 0, 0], stats.Speculation.AcceptedPerPosition);
    }

    /// disable_by_batch_size is checked again when drafts are scheduled: a request that arrived after they were
    /// proposed turns them off for that step.
    [Fact]
    public void DraftsProposedBeforeTheBatchGrewAreNotChecked()
    {
        var scheduler = New(numBlocks: 64, maxNumBatchedTokens: 64, disableBy: 1);
        var a = scheduler.Add(Request("a", promptLength: 4, maxTokens: 20) with { PromptTokenIds = [7, 8, 7, 8] })[0];
        scheduler.Postprocess(scheduler.Schedule(), [7]);
        Assert.NotEmpty(a.DraftTokenIds);
        scheduler.Add(Request("b", promptLength: 3, maxTokens: 5, firstToken: 200));
        var step = scheduler.Schedule();
        Assert.Equal(2, step.Entries.Count);
        Assert.Empty(EntryOf(step, a).Drafts);
    }

    /// No free block for all the drafts: the ones the sequence's last block still has slots for are checked.
    [Fact]
    public void WithoutAFreeBlockTheDraftsThatFitTheLastBlockAreChecked()
    {
        var scheduler = New(numBlocks: 1, maxNumBatchedTokens: 64);
        var a = scheduler.Add(Request("a", promptLength: 1, maxTokens: 3))[0];
        scheduler.Postprocess(scheduler.Schedule(), [50]);   // 2 tokens in the one block of 4 slots
        a.DraftTokenIds = [60, 61, 62, 63];
        Assert.Equal([60, 61], EntryOf(scheduler.Schedule(), a).Drafts);
    }

    [Fact]
    public void RefusedDraftsGiveTheirBlocksBack()
    {
        var scheduler = New(numBlocks: 16, maxNumBatchedTokens: 64);
        var a = scheduler.Add(Request("a", promptLength: 4, maxTokens: 20))[0];
        scheduler.Postprocess(scheduler.Schedule(), [50]);          // 5 tokens, 4 computed: 1 block, 2 to come
        a.DraftTokenIds = [60, 61, 62, 63, 64];                      // 10 slots: 3 blocks
        var step = scheduler.Schedule();
        Assert.Equal(3, a.BlockTable.Count);
        scheduler.Postprocess(step, [60, 7, 8, 9, 10, 11]);           // one draft kept, then 7: 7 tokens, 2 blocks
        Assert.Equal((7, 2), (a.NumTokens, a.BlockTable.Count));
        Assert.Equal(14, scheduler.KVCache.NumFreeBlocks);
        PoolInvariants.Check(scheduler);
    }
}
