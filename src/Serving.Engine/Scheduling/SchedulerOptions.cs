namespace Serving.Engine.Scheduling;

/// Budgets of one scheduling step and the limits checked at admission (vLLM's names at the CLI surface).
internal sealed record SchedulerOptions
{
    /// --max-num-seqs: sequences in one step.
    public int MaxNumSeqs { get; init; } = 256;

    /// --max-num-batched-tokens: tokens computed in one step (decode tokens plus prefill chunks).
    public int MaxNumBatchedTokens { get; init; } = 8192;

    /// --long-prefill-token-threshold: the most prompt tokens one sequence computes in a step (0: as many as the budget
    /// leaves), so that several long prompts prefill side by side and a short one behind them starts at once.
    public int LongPrefillTokenThreshold { get; init; }

    /// The order of the waiting and running queues.
    public SchedulingPolicy Policy { get; init; } = SchedulingPolicy.Fcfs;

    /// Longest prompt + completion accepted.
    public required int MaxModelLen { get; init; }

    /// Speculative decoding by prompt lookup (--speculative-config); null: one token per sequence and step.
    public Speculative.SpeculativeConfig? Speculative { get; init; }

    /// Tokens that end a sequence unless the request sets ignore_eos (the model's eos_token_id list).
    public IReadOnlySet<int> EosTokenIds { get; init; } = new HashSet<int>();

    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxNumSeqs, 1, nameof(MaxNumSeqs));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxNumBatchedTokens, 1, nameof(MaxNumBatchedTokens));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxModelLen, 1, nameof(MaxModelLen));
        ArgumentOutOfRangeException.ThrowIfNegative(LongPrefillTokenThreshold, nameof(LongPrefillTokenThreshold));
        Speculative?.Validate();
    }
}

/// A consistent snapshot of the scheduler's gauges and counters (feeds EngineStats).
internal sealed record SchedulerStats(
    int NumRunning,
    int NumWaiting,
    int NumBlocks,
    int NumFreeBlocks,
    double KVUsage,
    long PrefixCacheQueries,
    long PrefixCacheHits,
    long NumPreemptions,
    long NumComputedTokens,
    long NumGeneratedTokens,
    Speculative.SpeculationStats Speculation);
