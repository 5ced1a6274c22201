namespace Serving.Engine.Cuda;

/// The decode attention kernel a shape runs and how it is launched: its name, threads per block, dynamic shared
/// memory, blocks per KV head (query heads are the rows of 16-row MMA tiles, up to four tiles per block; a group of up
/// to 8 heads is one tile's worth, held as MMA columns) and the tokens a block takes at a time (the granule of the
/// context partitions).
internal sealed record DecodeAttentionKernel(string Name, bool TensorCores, uint Threads, uint SharedBytes, int BlocksPerKVHead, int Granule)
{
    public static DecodeAttentionKernel For(KernelShape shape, int computeCapability) =>
        shape.UsesTensorCoreAttention(computeCapability) ? TensorCore(shape) : CudaCore(shape);

    // Mirrors paged_attention_mma.cu: MMA_WARPS (4) warps, one per (16-row tile, chunk stream); a block takes up to
    // four tiles of a KV head's query heads (BLOCK_TILES) and 4 / BLOCK_TILES streams, each with MMA_STAGES stages of
    // a padded K and V chunk of MMA_CHUNK tokens; afterwards the same memory holds the merge.
    static DecodeAttentionKernel TensorCore(KernelShape shape)
    {
        const int warps = 4, chunk = 16, rows = 16;
        var tiles = (shape.GroupSize + rows - 1) / rows;
        var blockTiles = tiles >= 4 ? 4 : tiles >= 2 ? 2 : 1;
        var streams = warps / blockTiles;
        // struct MmaMergeShared: each warp's output rows, then max, sum and weight per warp row, max and sum per block row
        var merge = warps * rows * shape.HeadDim * sizeof(float) + 5 * warps * rows * sizeof(float);
        return new("paged_decode_attention_mma", true, warps * 32, (uint)Math.Max(streams * ChunkStagesBytes(shape), merge),
            (tiles + blockTiles - 1) / blockTiles, streams * chunk);
    }

    /// Bytes of struct MmaChunkStages (paged_attention_mma.cu): MMA_STAGES stages of a padded K and V chunk of 16
    /// tokens. One per chunk stream in decode, one per block in prefill.
    public static uint ChunkStagesBytes(KernelShape shape)
    {
        const int stages = 3, chunk = 16;
        var (size, headDim) = (shape.CacheDtype.Size, shape.HeadDim);
        return (uint)(stages * 2 * chunk * (headDim + 16 / size) * size);
    }

    // Mirrors struct AttentionShared in paged_attention.cu: two stages of padded K tile and V tile (pool elements),
    // scaled queries, tile probabilities, and the running max / sum / rescale factor per query head.
    static DecodeAttentionKernel CudaCore(KernelShape shape)
    {
        const int tile = 32, threads = 128;
        var (size, headDim, groupSize) = (shape.CacheDtype.Size, shape.HeadDim, shape.GroupSize);
        var keys = tile * (headDim + shape.CacheVectorBytes / size) * size;
        var values = tile * headDim * size;
        var floats = groupSize * headDim + groupSize * tile + 3 * groupSize;
        return new("paged_decode_attention", false, threads, (uint)(2 * (keys + values) + floats * sizeof(float)), 1, tile);
    }
}
