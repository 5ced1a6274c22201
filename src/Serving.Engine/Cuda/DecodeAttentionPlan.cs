namespace Serving.Engine.Cuda;

/// How one decode step splits attention over context (flash-decoding): each sequence's context is cut
/// into <see cref="NumPartitions"/> partitions of <see cref="PartitionSize"/> tokens (a multiple of the kernel's
/// <see cref="Granule"/>), scored by separate thread blocks and merged by a second kernel. One plan serves every
/// layer of a step, and so does the float32 workspace it sizes (partial outputs plus running max and sum per partition).
internal sealed record DecodeAttentionPlan(int NumSeqs, int PartitionSize, int NumPartitions, int Granule)
{
    /// Splits while the blocks of all partitions still run at once (<paramref name="concurrentBlocks"/> on the device;
    /// a sequence's partition takes <paramref name="blocksPerPartition"/> blocks, one per KV head or group of head
    /// tiles) and partitions stay at least <paramref name="minPartitionTokens"/> long (MinPartitionTokensFor).
    /// Measured on the H200 (Serving.Bench --attention-splits): a split pays a partial output per query head and a
    /// reduce launch, and buys only idle multiprocessors; a second wave of blocks, or partitions of a chunk or two per
    /// warp, cost more than they hide (GQA-8 at batch 64, ctx 2048: 4.58 ms unsplit against 4.87 at three partitions;
    /// MQA at batch 256: 2.58 against 3.36). <paramref name="granule"/>: the tokens one block takes at a time
    /// (partitions are whole granules).
    /// <paramref name="attentionSpan"/>: the most positions any layer attends to when every layer slides (the largest
    /// window; see AttentionSpan), so longer contexts split as that many positions do.
    public static DecodeAttentionPlan Create(int numSeqs, int maxContextLength, int blocksPerPartition, int concurrentBlocks, int granule,
        int minPartitionTokens = MinPartitionTokens, int? attentionSpan = null)
    {
        var attended = Math.Min(maxContextLength, attentionSpan ?? int.MaxValue);
        var inOneWave = concurrentBlocks / Math.Max(1, numSeqs * blocksPerPartition);
        var longEnough = attended / minPartitionTokens;
        return Split(numSeqs, attended, Math.Max(1, Math.Min(inOneWave, longEnough)), granule) with { AttentionSpan = attentionSpan };
    }

    /// The split for the CUDA-core kernel (paged_attention.cu: float32 models and pools, head dims the tensor cores do
    /// not take, such as gemma's 256), whose blocks are bound by the latency of their tile loop rather than by
    /// bandwidth: LatencyBoundPartitions for the batch, or one partition per granule of a shorter context.
    /// Measured on an H100 (Serving.Bench --attention-splits, gemma2-9b and gemma3-4b, head dim 256, batch 1 to 64,
    /// ctx 512 and 2048): this picks the fastest split or one within 8% of it at all twelve shapes, where the
    /// tensor-core rule (one wave, partitions of 256 tokens) left batch 1 at ctx 512 at 3.96 ms of attention against
    /// 0.72 at 16 partitions and batch 64 at ctx 2048 at 64.3 ms against 44.4 at 3 (gemma3-4b: 25.7 against 18.4).
    public static DecodeAttentionPlan CreateLatencyBound(int numSeqs, int maxContextLength, int blocksPerPartition, int concurrentBlocks,
        int granule, int? attentionSpan = null)
    {
        var attended = Math.Min(maxContextLength, attentionSpan ?? int.MaxValue);
        var partitions = LatencyBoundPartitions(numSeqs, blocksPerPartition, concurrentBlocks);
        return Split(numSeqs, attended, Math.Min(partitions, Math.Max(1, CeilDiv(attended, granule))), granule) with { AttentionSpan = attentionSpan };
    }

    /// The CUDA-core kernel's grid for a CUDA graph of decode batches of smallestBatch to largestBatch sequences: the
    /// most partitions an eager step of those batches up to maxContextLength plans (CreateLatencyBound), exactly that
    /// many (the eager step's may be fewer: the replay uploads its partition size, so it sums in the eager order, and
    /// the grid's other partitions are empty).
    public static DecodeAttentionPlan LatencyBoundGraph(int smallestBatch, int largestBatch, int maxContextLength, int blocksPerPartition,
        int concurrentBlocks, int granule, int? attentionSpan = null)
    {
        var attended = Math.Min(maxContextLength, attentionSpan ?? int.MaxValue);
        var most = Enumerable.Range(smallestBatch, largestBatch - smallestBatch + 1)
            .Max(n => LatencyBoundPartitions(n, blocksPerPartition, concurrentBlocks));
        var plan = new DecodeAttentionPlan(largestBatch, 0, Math.Min(most, Math.Max(1, CeilDiv(attended, granule))), granule)
        {
            AttentionSpan = attentionSpan,
        };
        return plan with { PartitionSize = plan.PartitionSizeFor(maxContextLength) };
    }

    /// Partitions of the CUDA-core kernel for numSeqs sequences of blocksPerPartition blocks each: a block takes about
    /// (its granules + half a granule of fixed cost) in time and the blocks run in waves of concurrentBlocks, so the
    /// split of a reference context of LatencyBoundReferenceGranules that minimizes waves x (granules per partition +
    /// 1/2) (fewer partitions on a tie). One count per batch, whatever the context (a shorter one takes one partition
    /// per granule at most), so a longer context never plans fewer.
    public static int LatencyBoundPartitions(int numSeqs, int blocksPerPartition, int concurrentBlocks)
    {
        const int granules = LatencyBoundReferenceGranules;
        var blocksPerSplit = (long)Math.Max(1, numSeqs) * Math.Max(1, blocksPerPartition);
        var (best, bestCost) = (1, double.MaxValue);
        for (var perPartition = granules; perPartition >= 1; perPartition--)
        {
            var partitions = CeilDiv(granules, perPartition);
            var waves = (blocksPerSplit * partitions + concurrentBlocks - 1) / Math.Max(1, concurrentBlocks);
            var cost = waves * (perPartition + 0.5);
            if (cost < bestCost) (best, bestCost) = (partitions, cost);
        }
        return best;
    }

    /// The context LatencyBoundPartitions weighs splits at: 128 granules (4096 tokens of the CUDA-core kernel's 32-token
    /// tiles); the twelve measured shapes pick the same at 64 to 128.
    public const int LatencyBoundReferenceGranules = 128;

    /// When every layer of the model slides: the largest window, the most positions a query attends to whatever its
    /// context (a sliding layer's partitions count from its window's start); null: some layer sees the whole context.
    public int? AttentionSpan { get; init; }

    /// The shortest partition a split makes: below it the fixed cost of a block (queries, pipeline start, merge) and of
    /// the reduce outweighs the shorter walk (batch 1, ctx 2048 on the H200: 0.49-0.53 ms for 6 to 32 partitions).
    public const int MinPartitionTokens = 256;

    /// The shortest partition worth making for a KV head of <paramref name="groupSize"/> query heads over a pool of
    /// <paramref name="cacheElementBytes"/>-byte elements: MinPartitionTokens, or longer where a partition's partial
    /// output (a float32 row per query head, written by the split and read again by the reduce) would be more than a
    /// sixteenth of the K and V it reads. Only large groups reach it: MQA (group 32) in bfloat16 splits into partitions
    /// of 512 tokens or more (H200, batch 64, ctx 2048: 1.01 ms at four partitions, 1.14 ms at six).
    public static int MinPartitionTokensFor(int groupSize, int cacheElementBytes) =>
        Math.Max(MinPartitionTokens, 16 * groupSize * sizeof(float) / (2 * cacheElementBytes));

    /// About <paramref name="partitions"/> partitions of whole granules (fewer where the granules do not divide), of
    /// the size PartitionSizeFor gives at this context: the one a step uploads, so a graph replaying this split sums in
    /// the same order.
    public static DecodeAttentionPlan Split(int numSeqs, int maxContextLength, int partitions, int granule)
    {
        var granules = Math.Max(1, CeilDiv(maxContextLength, granule));
        var count = CeilDiv(granules, CeilDiv(granules, Math.Clamp(partitions, 1, granules)));
        var plan = new DecodeAttentionPlan(numSeqs, 0, count, granule);
        return plan with { PartitionSize = plan.PartitionSizeFor(maxContextLength) };
    }

    /// The same number of partitions (the grid of a captured step), each as long as contexts up to maxContextLength
    /// need: the partition size a step uploads. Partitions past a sequence's context do nothing.
    public int PartitionSizeFor(int maxContextLength)
    {
        var granules = Math.Max(1, CeilDiv(Math.Min(maxContextLength, AttentionSpan ?? int.MaxValue), Granule));
        return CeilDiv(granules, NumPartitions) * Granule;
    }

    /// float32 elements of the workspace for <paramref name="numHeads"/> heads of <paramref name="headDim"/>:
    /// (numSeqs, numHeads, numPartitions, headDim) partial outputs, then (…, 2) max and sum. Zero without splits.
    public long WorkspaceElements(int numHeads, int headDim) =>
        NumPartitions == 1 ? 0 : (long)NumSeqs * numHeads * NumPartitions * (headDim + 2);

    static int CeilDiv(int a, int b) => (a + b - 1) / b;
}
