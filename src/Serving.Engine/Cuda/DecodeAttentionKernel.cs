namespace Serving.Engine.Cuda;

/// The decode attention kernel a shape runs and how it is launched: its name, threads per block, dynamic shared
/// memory, blocks per KV head (head tiles: query heads are the rows of 16-row MMA tiles) and the tokens a block
/// takes at a time (the granule of the context partitions).
internal sealed record DecodeAttentionKernel(string Name, bool TensorCores, uint Threads, uint SharedBytes, int HeadTiles, int Granule)
{
    public static DecodeAttentionKernel For(KernelShape shape, int computeCapability) =>
        shape.UsesTensorCoreAttention(computeCapability) ? TensorCore(shape) : CudaCore(shape);

    // Mirrors paged_attention_mma.cu: MMA_WARPS warps, each with MMA_STAGES stages of a padded K and V chunk of
    // MMA_CHUNK tokens (plus a float16 copy of one chunk for FP8 pools); afterwards the same memory holds the merge.
    static DecodeAttentionKernel TensorCore(KernelShape shape)
    {
        const int warps = 4, chunk = 16, rows = 16;
        var merge = warps * rows * shape.HeadDim * sizeof(float) + 2 * warps * rows * sizeof(float);
        return new("paged_decode_attention_mma", true, warps * 32, (uint)Math.Max(warps * ChunkStagesBytes(shape), merge),
            (shape.GroupSize + rows - 1) / rows, warps * chunk);
    }

    /// Bytes of struct MmaChunkStages (paged_attention_mma.cu): MMA_STAGES stages of a padded K and V chunk of 16
    /// tokens, plus a float16 copy of one chunk for FP8 pools. One per warp in decode, one per block in prefill.
    public static uint ChunkStagesBytes(KernelShape shape)
    {
        const int stages = 3, chunk = 16;
        var (size, headDim) = (shape.CacheDtype.Size, shape.HeadDim);
        var staged = stages * 2 * chunk * (headDim + 16 / size) * size;
        return (uint)(staged + (shape.CacheDtype.IsFp8 ? 2 * chunk * (headDim + 8) * 2 : 0));
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
