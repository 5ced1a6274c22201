namespace Serving.Engine.Cuda;

/// How one decode step splits attention over context (flash-decoding): each sequence's context is cut
/// into <see cref="NumPartitions"/> partitions of <see cref="PartitionSize"/> tokens, scored by separate
/// thread blocks and merged by a second kernel. One plan serves every layer of a step, and so does the
/// float32 workspace it sizes (partial outputs plus running max and sum per partition).
public sealed record DecodeAttentionPlan(int NumSeqs, int PartitionSize, int NumPartitions)
{
    /// Tokens scored per shared-memory round of the kernel (TILE in paged_attention.cu).
    public const int Tile = 64;

    /// Splits only as far as needed to give every multiprocessor about two blocks: more partitions cost a
    /// merge and extra partial writes, fewer leave the GPU idle at small batch.
    public static DecodeAttentionPlan Create(int numSeqs, int maxContextLength, int numKVHeads, int multiprocessorCount)
    {
        var tiles = Math.Max(1, CeilDiv(maxContextLength, Tile));
        var wanted = CeilDiv(2 * multiprocessorCount, numSeqs * numKVHeads);
        var partitions = Math.Clamp(wanted, 1, tiles);
        var tilesPerPartition = CeilDiv(tiles, partitions);
        return new DecodeAttentionPlan(numSeqs, tilesPerPartition * Tile, CeilDiv(tiles, tilesPerPartition));
    }

    /// float32 elements of the workspace for <paramref name="numHeads"/> heads of <paramref name="headDim"/>:
    /// (numSeqs, numHeads, numPartitions, headDim) partial outputs, then (…, 2) max and sum. Zero without splits.
    public long WorkspaceElements(int numHeads, int headDim) =>
        NumPartitions == 1 ? 0 : (long)NumSeqs * numHeads * NumPartitions * (headDim + 2);

    private static int CeilDiv(int a, int b) => (a + b - 1) / b;
}
