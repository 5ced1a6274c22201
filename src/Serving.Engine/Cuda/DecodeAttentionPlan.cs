namespace Serving.Engine.Cuda;

/// How one decode step splits attention over context (flash-decoding): each sequence's context is cut
/// into <see cref="NumPartitions"/> partitions of <see cref="PartitionSize"/> tokens (a multiple of the kernel's
/// <see cref="Granule"/>), scored by separate thread blocks and merged by a second kernel. One plan serves every
/// layer of a step, and so does the float32 workspace it sizes (partial outputs plus running max and sum per partition).
internal sealed record DecodeAttentionPlan(int NumSeqs, int PartitionSize, int NumPartitions, int Granule)
{
    /// Splits until there are about four waves of blocks (<paramref name="concurrentBlocks"/> run at once on the
    /// device; a sequence's partition takes <paramref name="blocksPerPartition"/> blocks, one per KV head or head
    /// tile): with fewer, the last partial wave leaves much of HBM idle; each partition costs only a partial output of
    /// headDim floats per query head, against the partition's K/V bytes. <paramref name="granule"/>: the tokens one
    /// block takes at a time (partitions are whole granules).
    public static DecodeAttentionPlan Create(int numSeqs, int maxContextLength, int blocksPerPartition, int concurrentBlocks, int granule)
    {
        var granules = Math.Max(1, CeilDiv(maxContextLength, granule));
        var wanted = CeilDiv(4 * concurrentBlocks, numSeqs * blocksPerPartition);
        var partitions = Math.Clamp(wanted, 1, granules);
        var granulesPerPartition = CeilDiv(granules, partitions);
        return new DecodeAttentionPlan(numSeqs, granulesPerPartition * granule, CeilDiv(granules, granulesPerPartition), granule);
    }

    /// The same number of partitions (the grid of a captured step), each as long as contexts up to maxContextLength
    /// need: the partition size a step uploads. Partitions past a sequence's context do nothing.
    public int PartitionSizeFor(int maxContextLength)
    {
        var granules = Math.Max(1, CeilDiv(maxContextLength, Granule));
        return CeilDiv(granules, NumPartitions) * Granule;
    }

    /// float32 elements of the workspace for <paramref name="numHeads"/> heads of <paramref name="headDim"/>:
    /// (numSeqs, numHeads, numPartitions, headDim) partial outputs, then (…, 2) max and sum. Zero without splits.
    public long WorkspaceElements(int numHeads, int headDim) =>
        NumPartitions == 1 ? 0 : (long)NumSeqs * numHeads * NumPartitions * (headDim + 2);

    static int CeilDiv(int a, int b) => (a + b - 1) / b;
}
