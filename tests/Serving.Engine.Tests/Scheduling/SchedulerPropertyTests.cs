using Serving.Engine.KVCache;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using Xunit.Abstractions;

namespace Serving.Engine.Tests.Scheduling;

/// Random workloads (seeded, so a failure names a reproducible seed) pushed through the scheduler and the
/// simulated engine: random arrivals, prompts sharing random prefixes, max tokens, n, EOS, cancellations,
/// tiny pools and token budgets. After every step the pool invariants hold; at the end every block is free
/// and every sequence that was not cancelled produced exactly what it produces alone.
public sealed class SchedulerPropertyTests(ITestOutputHelper output)
{
    const int Vocab = 64;
    const int Eos = 2;
    const int MaxModelLen = 48;

    /// Memory: SimulatedEngine's (0: each token depends on the whole sequence; 1 or 2 for text that repeats itself).
    sealed record Workload(SchedulerOptions Options, int NumBlocks, int BlockSize, bool PrefixCaching, List<Arrival> Arrivals, int Memory = 0);

    sealed record Arrival(int Step, GenerationRequest Request, int? CancelStep);

    sealed record Totals(long Preemptions, long PrefixHits, int Refused, int Cancelled, int ChunkedSteps, int Finished,
        long DraftTokens = 0, long AcceptedTokens = 0);

    [Fact]
    public void RandomWorkloadsKeepThePoolConsistentAndFinishCorrectly()
    {
        var totals = new List<Totals>();
        for (var seed = 0; seed < 300; seed++)
        {
            try { totals.Add(Run(Generate(new Random(seed)))); }
            catch (Exception e) { throw new InvalidOperationException($"workload seed {seed} failed: {e.Message}", e); }
        }
        output.WriteLine(
            $"preemptions {totals.Sum(t => t.Preemptions)}, prefix hit tokens {totals.Sum(t => t.PrefixHits)}, " +
            $"refused {totals.Sum(t => t.Refused)}, cancelled {totals.Sum(t => t.Cancelled)}, " +
            $"chunked steps {totals.Sum(t => t.ChunkedSteps)}, finished {totals.Sum(t => t.Finished)}");
        // The generator must actually provoke what the invariants are about.
        Assert.True(totals.Sum(t => t.Preemptions) > 100, "too few preemptions");
        Assert.True(totals.Sum(t => t.PrefixHits) > 1000, "too few prefix hits");
        Assert.True(totals.Sum(t => t.Refused) > 10, "too few refusals");
        Assert.True(totals.Sum(t => t.Cancelled) > 100, "too few cancellations");
        Assert.True(totals.Sum(t => t.ChunkedSteps) > 100, "too few chunked prefills");
        Assert.True(totals.Sum(t => t.Finished) > 1000, "too few finished sequences");
    }

    /// The same workloads with speculative decoding (random draft lengths and n-gram bounds; every third workload suffix
    /// decoding, with random factors, probabilities and caches of earlier answers) over text that repeats itself: drafts
    /// are kept, cut short, refused and dropped for lack of budget or blocks, and every sequence must still produce
    /// exactly what it produces alone, one token per step.
    [Fact]
    public void RandomWorkloadsWithSpeculativeDecodingFinishAsWithout()
    {
        var totals = new List<Totals>();
        for (var seed = 0; seed < 300; seed++)
        {
            var rng = new Random(1_000_000 + seed);
            var workload = Generate(rng);
            var lookupMin = rng.Next(1, 3);
            workload = workload with
            {
                Options = workload.Options with
                {
                    Speculative = seed % 3 == 2
                        ? new Engine.Speculative.SpeculativeConfig
                        {
                            Method = Engine.Speculative.SpeculativeMethod.Suffix, NumSpeculativeTokens = rng.Next(1, 6),
                            SuffixMaxSpecFactor = 1 + 2 * rng.NextDouble(), SuffixMinTokenProb = 0.5 * rng.NextDouble(), SuffixMaxCachedRequests = rng.Next(0, 20),
                        }
                        : new Engine.Speculative.SpeculativeConfig
                        {
                            NumSpeculativeTokens = rng.Next(1, 6), PromptLookupMin = lookupMin, PromptLookupMax = lookupMin + rng.Next(0, 3),
                        },
                },
                Memory = rng.Next(1, 3),
            };
            try { totals.Add(Run(workload)); }
            catch (Exception e) { throw new InvalidOperationException($"speculative workload seed {seed} failed: {e.Message}", e); }
        }
        var (drafted, accepted) = (totals.Sum(t => t.DraftTokens), totals.Sum(t => t.AcceptedTokens));
        output.WriteLine($"draft tokens {drafted}, accepted {accepted}, preemptions {totals.Sum(t => t.Preemptions)}, finished {totals.Sum(t => t.Finished)}");
        Assert.True(accepted > 1000, "too few drafts kept");
        Assert.True(drafted - accepted > 1000, "too few drafts refused");
        Assert.True(totals.Sum(t => t.Preemptions) > 100, "too few preemptions");
        Assert.True(totals.Sum(t => t.Finished) > 1000, "too few finished sequences");
    }

    static Workload Generate(Random rng)
    {
        var blockSize = new[] { 1, 2, 4, 8 }[rng.Next(4)];
        var numBlocks = rng.Next(48 / blockSize / 2, 48 / blockSize * 4);
        var policy = rng.Next(2) == 0 ? SchedulingPolicy.Fcfs : SchedulingPolicy.Priority;
        var options = new SchedulerOptions
        {
            Policy = policy,
            MaxNumSeqs = rng.Next(1, 9),
            MaxNumBatchedTokens = rng.Next(1, 40),
            MaxModelLen = MaxModelLen,
            EosTokenIds = new HashSet<int> { Eos },
        };
        var prefixes = Enumerable.Range(0, 3).Select(_ => RandomTokens(rng, rng.Next(0, 20))).ToArray();
        var arrivals = Enumerable.Range(0, rng.Next(1, 25)).Select(i => RandomArrival(rng, i, prefixes, policy)).ToList();
        var prefixCaching = rng.Next(4) != 0;
        // a third of the workloads cap each sequence's prefill chunk (--long-prefill-token-threshold)
        var longPrefillThreshold = rng.Next(3) == 0 ? rng.Next(1, 12) : 0;
        return new Workload(options with { LongPrefillTokenThreshold = longPrefillThreshold }, numBlocks, blockSize, prefixCaching, arrivals);
    }

    static Arrival RandomArrival(Random rng, int i, int[][] prefixes, SchedulingPolicy policy)
    {
        var prompt = prefixes[rng.Next(prefixes.Length)].Concat(RandomTokens(rng, rng.Next(1, 16))).ToArray();
        var sampling = SamplingParams.Greedy with
        {
            MaxTokens = rng.Next(1, 20),
            MinTokens = rng.Next(3) == 0 ? rng.Next(0, 4) : 0,
            N = rng.Next(4) == 0 ? rng.Next(2, 4) : 1,
            IgnoreEos = rng.Next(3) == 0,
        };
        var step = rng.Next(0, 60);
        int? cancelStep = rng.Next(4) == 0 ? step + rng.Next(0, 25) : null;
        var priority = policy == SchedulingPolicy.Priority ? rng.Next(-2, 3) : 0;
        return new Arrival(step, new GenerationRequest { RequestId = $"r{i}", PromptTokenIds = prompt, Sampling = sampling, Priority = priority }, cancelStep);
    }

    static int[] RandomTokens(Random rng, int count) => Enumerable.Range(0, count).Select(_ => rng.Next(3, Vocab)).ToArray();

    static Totals Run(Workload workload)
    {
        var scheduler = new Scheduler(workload.Options, new KVCacheManager(workload.NumBlocks, workload.BlockSize, workload.PrefixCaching));
        var engine = new SimulatedEngine(scheduler, Vocab, workload.Memory);
        var admitted = new List<Sequence>();
        var cancelled = new HashSet<string>();
        int refused = 0, chunkedSteps = 0;
        var lastArrival = workload.Arrivals.Max(arrival => Math.Max(arrival.Step, arrival.CancelStep ?? 0));
        for (var step = 0; step <= lastArrival || scheduler.HasUnfinishedSequences; step++)
        {
            Assert.True(step < 20_000, "no progress (livelock)");
            foreach (var arrival in workload.Arrivals.Where(arrival => arrival.Step == step))
                refused += Admit(scheduler, workload, arrival.Request, admitted) ? 0 : 1;
            foreach (var arrival in workload.Arrivals.Where(arrival => arrival.CancelStep == step))
                if (scheduler.Abort(arrival.Request.RequestId).Count > 0)
                    cancelled.Add(arrival.Request.RequestId);
            if (scheduler.HasUnfinishedSequences)
                chunkedSteps += CheckedStep(engine, workload.Options) ? 1 : 0;
        }
        PoolInvariants.CheckAllFree(scheduler);
        CheckOutputs(admitted, cancelled, workload.Memory);
        var stats = scheduler.GetStats();
        var finished = admitted.Count(sequence => sequence.FinishReason != FinishReason.Abort);
        return new Totals(stats.NumPreemptions, stats.PrefixCacheHits, refused, cancelled.Count, chunkedSteps, finished,
            stats.Speculation.NumDraftTokens, stats.Speculation.NumAcceptedTokens);
    }

    /// Adds the request; a refusal must be one of the two legitimate ones.
    static bool Admit(Scheduler scheduler, Workload workload, GenerationRequest request, List<Sequence> admitted)
    {
        try
        {
            admitted.AddRange(scheduler.Add(request));
            return true;
        }
        catch (InvalidRequestException)
        {
            var total = request.PromptTokenIds.Count + request.Sampling.MaxTokens;
            Assert.True(total > MaxModelLen || (total + workload.BlockSize - 1) / workload.BlockSize > workload.NumBlocks);
            return false;
        }
    }

    /// One step with its budget and progress checks; true when it carried a prefill chunk that samples nothing.
    static bool CheckedStep(SimulatedEngine engine, SchedulerOptions options)
    {
        var (batch, _) = engine.Step();
        Assert.False(batch.IsEmpty, "a step scheduled nothing while work was waiting");
        Assert.True(batch.NumTokens <= options.MaxNumBatchedTokens);
        Assert.True(batch.Entries.Count <= options.MaxNumSeqs);
        Assert.True(engine.Scheduler.Running.Count <= options.MaxNumSeqs);
        Assert.All(batch.Entries, entry => Assert.True(entry.NumNewTokens >= 1));
        if (options.LongPrefillTokenThreshold > 0)
            Assert.All(batch.Entries, entry => Assert.True(entry.NumKnownTokens <= options.LongPrefillTokenThreshold));
        Assert.Equal(batch.Entries.Count, batch.Entries.Select(entry => entry.Sequence).Distinct().Count());
        PoolInvariants.Check(engine.Scheduler);
        return batch.Entries.Any(entry => !entry.SamplesToken);
    }

    static void CheckOutputs(List<Sequence> admitted, HashSet<string> cancelled, int memory)
    {
        foreach (var sequence in admitted)
        {
            Assert.True(sequence.IsFinished);
            if (cancelled.Contains(sequence.RequestId) && sequence.FinishReason == FinishReason.Abort)
                continue;
            var expected = SimulatedEngine.ReferenceOutput(sequence, new HashSet<int> { Eos }, MaxModelLen, Vocab, memory);
            Assert.Equal(expected, sequence.OutputTokenIds);
        }
    }
}
