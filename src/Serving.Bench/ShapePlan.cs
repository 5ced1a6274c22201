using Serving.Engine.KVCache;

namespace Serving.Bench;

/// A measured shape (decode batch x context, prefill batch x length, generate batch) that was not run, and why.
internal sealed record SkippedShape(string Model, string Kind, string Shape, long KVBytesNeeded, long KVBytesAvailable, string Reason);

/// Which of a run's shapes fit the device. Each shape needs the KV blocks of all its sequences at once; the pool
/// gets what memory x --gpu-memory-utilization leaves after the weights, and is sized for the largest shape that
/// fits. A shape that needs more is reported as not fitting (a CUDA out-of-memory used to end the whole run).
internal sealed class ShapePlan
{
    readonly BenchOptions _options;
    readonly long _bytesPerBlock;
    readonly long _budgetBytes;

    public ShapePlan(BenchOptions options, KVCacheSpec spec, long memoryBytes, long weightBytes, string model)
    {
        _options = options;
        _bytesPerBlock = spec.BytesPerBlock(options.BlockSize);
        _budgetBytes = Math.Max(0, (long)(memoryBytes * options.GpuMemoryUtilization) - weightBytes);
        Model = model;
        var needs = Decode.Select(s => Blocks(s.Batch, s.Context))
            .Concat(Prefill.Select(s => Blocks(s.Batch, s.Length)))
            .Concat(Generate.Select(GenerateBlocks))
            .Append(StepChecks.BlocksNeeded(options.BlockSize));
        PoolBlocks = (int)Math.Min(needs.Max() + 8, MaxBlocks);
    }

    public string Model { get; }

    long MaxBlocks => _budgetBytes / _bytesPerBlock;

    /// Blocks of the pool: the largest shape that fits, the full-step checks, and a margin.
    public int PoolBlocks { get; }

    public IEnumerable<(int Batch, int Context)> Decode =>
        _options.BatchSizes.SelectMany(b => _options.ContextLengths.Select(c => (b, c))).Where(s => Fits(Blocks(s.Item1, s.Item2)));

    public IEnumerable<(int Batch, int Length)> Prefill => _options.Prefill.Where(s => Fits(Blocks(s.Batch, s.Length)));

    public IEnumerable<int> Generate => _options.GenerateBatches.Where(b => Fits(GenerateBlocks(b)));

    /// generate()'s run, as transformers was measured: prompts of GeneratePrompt tokens, GenerateNewTokens new ones.
    public const int GeneratePrompt = 512, GenerateNewTokens = 128;
    const int GenerateLength = GeneratePrompt + GenerateNewTokens;

    /// The most tokens, sequences and blocks a sequence of any step the run sends (decode, prefill, generate()'s prefill
    /// chunks and decode steps): the step buffers to reserve before decode graphs are captured, since a step past them
    /// grows the buffers and graphs captured over the old ones no longer replay (generate() then ran eagerly).
    public (int Tokens, int Seqs, int BlocksPerSeq) LargestStep
    {
        get
        {
            var generate = Generate.Select(b => (Tokens: Math.Min(b, DecodeBenchmark.PromptsPerChunk(GeneratePrompt)) * GeneratePrompt, Seqs: b,
                Blocks: (int)CeilDiv(GenerateLength, _options.BlockSize)));
            var steps = Decode.Select(s => (Tokens: s.Batch, Seqs: s.Batch, Blocks: (int)CeilDiv(s.Context, _options.BlockSize)))
                .Concat(Prefill.Select(s => (Tokens: s.Batch * s.Length, Seqs: s.Batch, Blocks: (int)CeilDiv(s.Length, _options.BlockSize))))
                .Concat(generate).DefaultIfEmpty((Tokens: 1, Seqs: 1, Blocks: 1)).ToList();
            return (steps.Max(s => s.Tokens), steps.Max(s => s.Seqs), steps.Max(s => s.Blocks));
        }
    }

    /// The batch sizes of the decode graphs the run captures (--cuda-graphs): the server's buckets (DecodeGraphs.Buckets)
    /// for a --max-num-seqs of the largest batch it decodes (its decode shapes and generate()'s batches that fit), so a
    /// batch replays the graph the server would replay for it, whose attention grid is sized for its own bucket.
    public IReadOnlyList<int> GraphBatchSizes
    {
        get
        {
            var largest = Decode.Select(s => s.Batch).Concat(Generate).DefaultIfEmpty(0).Max();
            return largest == 0 ? [] : Serving.Engine.Model.DecodeGraphs.Buckets(largest);
        }
    }

    /// Every shape of the run that does not fit, with what it needs against what is left after the weights.
    public IEnumerable<SkippedShape> Skipped()
    {
        foreach (var (batch, context) in _options.BatchSizes.SelectMany(b => _options.ContextLengths.Select(c => (b, c))))
            if (!Fits(Blocks(batch, context))) yield return NotFitting("decode", $"{batch} x {context}", Blocks(batch, context));
        foreach (var (batch, length) in _options.Prefill)
            if (!Fits(Blocks(batch, length))) yield return NotFitting("prefill", $"{batch} x {length}", Blocks(batch, length));
        foreach (var batch in _options.GenerateBatches)
            if (!Fits(GenerateBlocks(batch))) yield return NotFitting("generate", $"{batch} x ({GeneratePrompt}+{GenerateNewTokens})", GenerateBlocks(batch));
    }

    /// A shape that fit the plan but ran out of memory on the device all the same (activations, fragmentation).
    public SkippedShape OutOfMemory(string kind, string shape, long blocks) =>
        new(Model, kind, shape, blocks * _bytesPerBlock, _budgetBytes, "out of memory on the device");

    public long Blocks(long batch, long tokens) => batch * CeilDiv(tokens, _options.BlockSize);

    public long GenerateBlocks(int batch) => batch * (CeilDiv(GenerateLength, _options.BlockSize) + 1);

    bool Fits(long blocks) => blocks + 8 <= MaxBlocks;

    SkippedShape NotFitting(string kind, string shape, long blocks) =>
        new(Model, kind, shape, blocks * _bytesPerBlock, _budgetBytes, "does not fit");

    static long CeilDiv(long a, long b) => (a + b - 1) / b;
}
