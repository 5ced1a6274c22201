using Serving.Engine.Config;
using static TorchSharp.torch;

namespace Serving.Engine.KVCache;

/// What one token costs in the KV pool: K and V, in every layer, for each KV head (not each query head: a
/// GQA model with G KV heads stores H/G times fewer bytes per token than its MHA twin).
public sealed record KVCacheSpec(int NumLayers, int NumKVHeads, int HeadDim, int DtypeSize)
{
    /// 2 (K and V) x layers x KV heads x head dim x dtype size.
    public long BytesPerToken => 2L * NumLayers * NumKVHeads * HeadDim * DtypeSize;

    public long BytesPerBlock(int blockSize) => BytesPerToken * blockSize;

    /// The pool a model of this config needs in this dtype.
    public static KVCacheSpec For(ModelConfig config, ScalarType dtype) => new(
        config.NumHiddenLayers, config.NumKeyValueHeads, config.HeadDim, dtype switch
        {
            ScalarType.Float32 => 4,
            ScalarType.BFloat16 or ScalarType.Float16 => 2,
            _ => throw new ArgumentException($"KV cache dtype must be float32, bfloat16 or float16, not {dtype}", nameof(dtype)),
        });
}

/// How many blocks a pool has and what they hold; logged at start-up and exposed through ModelInfo.
internal sealed record KVCacheCapacity(int NumBlocks, int BlockSize, long BytesPerToken)
{
    public long CapacityTokens => (long)NumBlocks * BlockSize;

    public long TotalBytes => CapacityTokens * BytesPerToken;

    /// Sequences of maxModelLen tokens that fit at once; each needs whole blocks.
    public long MaxConcurrentSequences(int maxModelLen) => NumBlocks / ((maxModelLen + BlockSize - 1) / BlockSize);
}

internal static class KVCacheSizing
{
    /// Blocks that fit in memoryBytes (rounded down), or numBlocksOverride when given (--num-gpu-blocks-override).
    public static KVCacheCapacity Plan(KVCacheSpec spec, long memoryBytes, int blockSize, int? numBlocksOverride = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        var numBlocks = numBlocksOverride ?? (int)Math.Min(int.MaxValue, memoryBytes / spec.BytesPerBlock(blockSize));
        if (numBlocks < 1)
            throw new ArgumentException(
                $"KV cache memory of {memoryBytes} bytes holds no block of {blockSize} tokens " +
                $"({spec.BytesPerBlock(blockSize)} bytes each)", nameof(memoryBytes));
        return new KVCacheCapacity(numBlocks, blockSize, spec.BytesPerToken);
    }
}
