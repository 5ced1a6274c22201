namespace Serving.Bench;

/// One decode measurement: a batch of sequences each attending over ContextLength tokens, one token each.
internal sealed record DecodeResult(
    string Model, string Path, int Batch, int ContextLength,
    double StepMs, double TokensPerSecond,
    long WeightBytes, long KVBytesRead, double FloorMs, double FractionOfFloor,
    double? AttentionMs, double? AttentionShare);

/// One prefill measurement: Batch fresh prompts of PromptLength tokens in one step.
internal sealed record PrefillResult(
    string Model, string Path, int Batch, int PromptLength,
    double StepMs, double TokensPerSecond, double Teraflops, double FractionOfMatmulRate);

/// generate()-style run: Batch prompts of PromptLength, then NewTokens greedy tokens each; new tokens per second.
internal sealed record GenerateResult(string Model, string Path, int Batch, int PromptLength, int NewTokens, double TotalMs, double TokensPerSecond);

/// Per-model memory facts: KV bytes each token occupies, and how many sequences of FitLength tokens fit in
/// the memory left after the weights (at the run's GPU memory utilization).
internal sealed record CapacityResult(string Model, long WeightBytes, long KVBytesPerToken, int FitLength, long SequencesThatFit);

/// Where one decode step's GPU time went (--profile): milliseconds per operation of the fused backend, the matrix
/// products (linear layers and LM head) as the rest of the step.
internal sealed record ProfileResult(string Model, int Batch, int ContextLength, IReadOnlyDictionary<string, double> Milliseconds);

/// Decode attention of all layers alone at several context splits (--attention-splits): milliseconds per partition
/// count, and the count the planner picks for this shape.
internal sealed record AttentionSplitResult(string Model, int Batch, int ContextLength, int PlannedPartitions,
    IReadOnlyDictionary<int, double> MillisecondsByPartitions);

/// Everything one run measured, as written to JSON.
internal sealed record BenchReport(
    string Device, string Dtype, double BandwidthGBs, double MatmulTflops,
    IReadOnlyList<FixtureResult> Fixtures, IReadOnlyList<CheckResult> Checks, IReadOnlyList<DecodeResult> Decode, IReadOnlyList<PrefillResult> Prefill, IReadOnlyList<GenerateResult> Generate,
    IReadOnlyList<CapacityResult> Capacity, IReadOnlyList<KVQualityResult> KVQuality, IReadOnlyList<ProfileResult> Profiles)
{
    /// Shapes not measured: they do not fit the device's memory, or ran out of it.
    public IReadOnlyList<SkippedShape> Skipped { get; init; } = [];
    /// --linear: the model's linear layers on cuBLAS, per token count.
    public IReadOnlyList<LinearResult> Linear { get; init; } = [];
    /// --attention-splits: decode attention alone per context split.
    public IReadOnlyList<AttentionSplitResult> AttentionSplits { get; init; } = [];
}
