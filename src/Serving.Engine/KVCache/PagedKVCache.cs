using static TorchSharp.torch;

namespace Serving.Engine.KVCache;

/// The KV pool: for every layer one K and one V tensor of (numBlocks, blockSize, numKVHeads, headDim), allocated
/// once in the spec's storage type on the device, and for FP8 pools the scale of each layer's K and V. It stores
/// each group's single KV head, so a GQA model with G KV heads holds H/G times more tokens than its MHA twin in the
/// same memory. Block ids and slots are managed elsewhere (the block pool); this class only owns the storage.
public sealed class PagedKVCache : IDisposable
{
    readonly Tensor[] _keys;    // numLayers x (numBlocks, blockSize, numKVHeads, headDim)
    readonly Tensor[] _values;  // numLayers x (numBlocks, blockSize, numKVHeads, headDim)
    bool _calibrateScales;

    public KVCacheSpec Spec { get; }
    public int NumBlocks { get; }
    public int BlockSize { get; }
    public Device Device { get; }
    public int NumLayers => Spec.NumLayers;
    public KVCacheDtype Dtype => Spec.Dtype;

    /// (numLayers, 2) float32 on the device: each layer's K scale and V scale (stored = value / scale). 1 until set
    /// from a checkpoint's k_scale / v_scale or calibrated (--calculate-kv-scales); only FP8 pools use them.
    public Tensor Scales { get; }

    /// The next step that writes K/V computes the scales from the K and V it writes (--calculate-kv-scales); under
    /// tensor parallelism every rank's pool from its own KV heads.
    public bool CalibrateScales
    {
        get => _calibrateScales;
        set
        {
            _calibrateScales = value;
            foreach (var pool in RankPools) pool.CalibrateScales = value;
        }
    }

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
        _keys = Enumerable.Range(0, NumLayers).Select(_ => zeros(shape, spec.Dtype.Storage, device).DetachFromDisposeScope()).ToArray();
        _values = Enumerable.Range(0, NumLayers).Select(_ => zeros(shape, spec.Dtype.Storage, device).DetachFromDisposeScope()).ToArray();
        Scales = ones(NumLayers, 2, dtype: ScalarType.Float32, device: device).DetachFromDisposeScope();
    }

    // (numBlocks, blockSize, numKVHeads, headDim)
    internal Tensor Keys(int layer) => _keys[layer];

    // (numBlocks, blockSize, numKVHeads, headDim)
    internal Tensor Values(int layer) => _values[layer];

    /// Sets every layer's K and V scale: scales (numLayers, 2) as [k_scale, v_scale] per layer.
    public void SetScales(float[,] scales)
    {
        if (scales.GetLength(0) != NumLayers || scales.GetLength(1) != 2)
            throw new ArgumentException($"KV scales must be ({NumLayers}, 2), got ({scales.GetLength(0)}, {scales.GetLength(1)})");
        using var host = tensor(scales);
        Scales.copy_(host);
    }

    /// Each layer's [k_scale, v_scale], read back to the host.
    public float[,] ReadScales()
    {
        using var host = Scales.cpu();
        var flat = host.data<float>().ToArray();
        var result = new float[NumLayers, 2];
        for (var layer = 0; layer < NumLayers; layer++) (result[layer, 0], result[layer, 1]) = (flat[2 * layer], flat[2 * layer + 1]);
        return result;
    }

    public void Dispose()
    {
        foreach (var tensor in _keys.Concat(_values)) tensor.Dispose();
        Scales.Dispose();
        foreach (var pool in RankPools) pool.Dispose();
    }
}
