using Serving.Engine.KVCache;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;

namespace Serving.Engine.Tests.Scheduling;

/// Small builders shared by the scheduler tests.
internal static class SchedulerTestKit
{
    public const int Eos = 2;

    public static Scheduler NewScheduler(
        int numBlocks = 64, int blockSize = 4, int maxNumBatchedTokens = 256, int maxNumSeqs = 16,
        int maxModelLen = 128, bool prefixCaching = true, SchedulingPolicy policy = SchedulingPolicy.Fcfs) =>
        new(new SchedulerOptions
        {
            Policy = policy,
            MaxNumSeqs = maxNumSeqs,
            MaxNumBatchedTokens = maxNumBatchedTokens,
            MaxModelLen = maxModelLen,
            EosTokenIds = new HashSet<int> { Eos },
        },
            new KVCacheManager(numBlocks, blockSize, prefixCaching));

    /// A prompt of promptLength tokens counting up from firstToken (all above the simulated vocabulary's EOS).
    public static GenerationRequest Request(string id, int promptLength, int maxTokens, int n = 1, int firstToken = 100, int priority = 0) => new()
    {
        RequestId = id,
        Priority = priority,
        PromptTokenIds = Enumerable.Range(firstToken, promptLength).ToArray(),
        Sampling = SamplingParams.Greedy with { MaxTokens = maxTokens, N = n, IgnoreEos = true },
    };

    public static ScheduledSequence EntryOf(ScheduledBatch batch, Sequence sequence) =>
        Assert.Single(batch.Entries, entry => entry.Sequence == sequence);
}
