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

    /// Every prompt is computed whole in one step, never in chunks (a model that attends both ways, ModelConfig.IsCausal
    /// false: a chunk would not see the tokens after it). A prompt the step's budget cannot take whole waits for a
    /// step that can (one with nothing else does: the budget is at least the model's length).
    public bool WholePromptsInOneStep { get; init; }

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
        if (WholePromptsInOneStep && (MaxNumBatchedTokens < MaxModelLen || LongPrefillTokenThreshold > 0))
            throw new ArgumentException("whole prompts in one step need a token budget of the model's length and no prefill threshold");
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
