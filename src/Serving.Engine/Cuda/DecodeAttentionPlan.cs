namespace Serving.Engine.Cuda;

/// How one decode step splits attention over context (flash-decoding): each sequence's context is cut
/// into <see cref="NumPartitions"/> partitions of <see cref="PartitionSize"/> tokens, scored by separate
/// thread blocks and merged by a second kernel. One plan serves every layer of a step, and so does the
/// float32 workspace it sizes (partial outputs plus running max and sum per partition).
internal sealed record DecodeAttentionPlan(int NumSeqs, int PartitionSize, int NumPartitions)
{
    /// Tokens per shared-memory stage of the kernel (TILE in paged_attention.cu).
    public const int Tile = 32;

    /// Splits until there are about four waves of blocks (<paramref name="concurrentBlocks"/> run at once on
    /// the device): with fewer, the last partial wave leaves much of HBM idle; each partition costs only a
    /// partial output of headDim floats per query head, against the partition's K/V bytes.
    public static DecodeAttentionPlan Create(int numSeqs, int maxContextLength, int numKVHeads, int concurrentBlocks)
    {
        var tiles = Math.Max(1, CeilDiv(maxContextLength, Tile));
        var wanted = CeilDiv(4 * concurrentBlocks, numSeqs * numKVHeads);
        var partitions = Math.Clamp(wanted, 1, tiles);
        var tilesPerPartition = CeilDiv(tiles, partitions);
        return new DecodeAttentionPlan(numSeqs, tilesPerPartition * Tile, CeilDiv(tiles, tilesPerPartition));
    }

    /// The same number of partitions (the grid of a captured step), each as long as contexts up to maxContextLength
    /// need: the partition size a step uploads. Partitions past a sequence's context do nothing.
    public int PartitionSizeFor(int maxContextLength)
    {
        var tiles = Math.Max(1, CeilDiv(maxContextLength, Tile));
        return CeilDiv(tiles, NumPartitions) * Tile;
    }

    /// float32 elements of the workspace for <paramref name="numHeads"/> heads of <paramref name="headDim"/>:
    /// (numSeqs, numHeads, numPartitions, headDim) partial outputs, then (…, 2) max and sum. Zero without splits.
    public long WorkspaceElements(int numHeads, int headDim) =>
        NumPartitions == 1 ? 0 : (long)NumSeqs * numHeads * NumPartitions * (headDim + 2);

    static int CeilDiv(int a, int b) => (a + b - 1) / b;
}
