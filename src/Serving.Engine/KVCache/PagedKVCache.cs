using Serving.Engine.Config;
using static TorchSharp.torch;

namespace Serving.Engine.KVCache;

/// The KV pool: for every layer one K and one V tensor of (numBlocks, blockSize, numKVHeads, headDim), allocated
/// once in the model's dtype and device. It stores each group's single KV head, so a GQA model with G KV heads
/// holds H/G times more tokens than its MHA twin in the same memory. Block ids and slots are managed elsewhere
/// (the block pool); this class only owns the storage.
public sealed class PagedKVCache : IDisposable
{
    readonly Tensor[] _keys;    // numLayers x (numBlocks, blockSize, numKVHeads, headDim)
    readonly Tensor[] _values;  // numLayers x (numBlocks, blockSize, numKVHeads, headDim)

    public int NumLayers { get; }
    public int NumBlocks { get; }
    public int BlockSize { get; }
    public int NumKVHeads { get; }
    public int HeadDim { get; }
    public ScalarType Dtype { get; }
    public Device Device { get; }

    public long CapacityTokens => (long)NumBlocks * BlockSize;

    public PagedKVCache(ModelConfig config, int numBlocks, int blockSize, ScalarType dtype, Device device)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numBlocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        (NumLayers, NumBlocks, BlockSize) = (config.NumHiddenLayers, numBlocks, blockSize);
        (NumKVHeads, HeadDim, Dtype, Device) = (config.NumKeyValueHeads, config.HeadDim, dtype, device);
        long[] shape = [numBlocks, blockSize, NumKVHeads, HeadDim];
        // zeroed: attention reads whole blocks, and a masked slot gets probability 0, but 0 x NaN would still be NaN
        _keys = Enumerable.Range(0, NumLayers).Select(_ => zeros(shape, dtype, device).DetachFromDisposeScope()).ToArray();
        _values = Enumerable.Range(0, NumLayers).Select(_ => zeros(shape, dtype, device).DetachFromDisposeScope()).ToArray();
    }

    // (numBlocks, blockSize, numKVHeads, headDim)
    internal Tensor Keys(int layer) => _keys[layer];

    // (numBlocks, blockSize, numKVHeads, headDim)
    internal Tensor Values(int layer) => _values[layer];

    public void Dispose()
    {
        foreach (var tensor in _keys.Concat(_values)) tensor.Dispose();
    }
}
