using static TorchSharp.torch;

namespace Serving.Engine.KVCache;

/// The KV pool: for every layer one K and one V tensor of (numBlocks, blockSize, numKVHeads, headDim), allocated
/// once in the spec's dtype on the device. It stores each group's single KV head, so a GQA model with G KV heads
/// holds H/G times more tokens than its MHA twin in the same memory. Block ids and slots are managed elsewhere
/// (the block pool); this class only owns the storage.
public sealed class PagedKVCache : IDisposable
{
    readonly Tensor[] _keys;    // numLayers x (numBlocks, blockSize, numKVHeads, headDim)
    readonly Tensor[] _values;  // numLayers x (numBlocks, blockSize, numKVHeads, headDim)

    public KVCacheSpec Spec { get; }
    public int NumBlocks { get; }
    public int BlockSize { get; }
    public Device Device { get; }
    public int NumLayers => Spec.NumLayers;
    public ScalarType Dtype => Spec.Dtype;

    public long CapacityTokens => (long)NumBlocks * BlockSize;

    /// Under tensor parallelism: the pools of ranks 1 .. N-1, the same blocks with each rank's own KV heads (this one
    /// is rank 0's); owned by this pool. Empty at one rank.
    internal IReadOnlyList<PagedKVCache> RankPools { get; init; } = [];

    public PagedKVCache(KVCacheSpec spec, int numBlocks, int blockSize, Device device)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numBlocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        (Spec, NumBlocks, BlockSize, Device) = (spec, numBlocks, blockSize, device);
        long[] shape = [numBlocks, blockSize, spec.NumKVHeads, spec.HeadDim];
        // zeroed: attention reads whole blocks, and a masked slot gets probability 0, but 0 x NaN would still be NaN
        _keys = Enumerable.Range(0, NumLayers).Select(_ => zeros(shape, spec.Dtype, device).DetachFromDisposeScope()).ToArray();
        _values = Enumerable.Range(0, NumLayers).Select(_ => zeros(shape, spec.Dtype, device).DetachFromDisposeScope()).ToArray();
    }

    // (numBlocks, blockSize, numKVHeads, headDim)
    internal Tensor Keys(int layer) => _keys[layer];

    // (numBlocks, blockSize, numKVHeads, headDim)
    internal Tensor Values(int layer) => _values[layer];

    public void Dispose()
    {
        foreach (var tensor in _keys.Concat(_values)) tensor.Dispose();
        foreach (var pool in RankPools) pool.Dispose();
    }
}
