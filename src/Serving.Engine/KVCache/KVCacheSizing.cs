namespace Serving.Engine.KVCache;

/// How many blocks a pool has and what they hold; logged at start-up and exposed through ModelInfo.
internal sealed record KVCacheCapacity(int NumBlocks, int BlockSize, long BytesPerToken)
{
    public long CapacityTokens => (long)NumBlocks * BlockSize;

    public long TotalBytes => CapacityTokens * BytesPerToken;

    /// Sequences that fit at once when each holds blocksPerSequence (KVCacheManager.MostBlocksHeld of the longest).
    public long MaxConcurrentSequences(int blocksPerSequence) => NumBlocks / blocksPerSequence;
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
