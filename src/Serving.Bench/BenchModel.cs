using Serving.Engine.Config;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Bench;

/// A preset model with random weights (the engine's own LoadedModel, so the benchmark times the real forward)
/// and a KV pool filled with random values: never zeros, which hide unwritten memory and run faster.
internal sealed class BenchModel : IDisposable
{
    /// Takes the loaded model (Load) and gives it a pool of numBlocks.
    public BenchModel(string preset, LoadedModel model, KVCacheDtype cacheDtype, int numBlocks, int blockSize)
    {
        Model = model;
        Cache = Model.CreateKVCache(numBlocks, blockSize, cacheDtype);
        Name = cacheDtype == KVCacheDtype.Of(Model.Dtype) ? preset : $"{preset} [{cacheDtype} KV]";
        using var noGrad = no_grad();
        for (var layer = 0; layer < Cache.NumLayers; layer++)
        {
            Fill(Cache.Keys(layer));
            Fill(Cache.Values(layer));
        }
    }

    /// The preset's model on the device, and the pool dtype --kv-cache-dtype means for it: what the pool's size
    /// is planned from before the BenchModel is made.
    public static (LoadedModel Model, KVCacheDtype CacheDtype) Load(string preset, string dtype, string kvCacheDtype, Device device)
    {
        var model = ModelLoader.LoadPreset(preset, dtype, device);
        return (model, KVCacheDtype.Resolve(kvCacheDtype, model.Dtype));
    }

    public LoadedModel Model { get; }
    public PagedKVCache Cache { get; }
    public ModelConfig Config => Model.Config;
    public string Name { get; }
    public long KVBytesPerToken => Cache.Spec.BytesPerToken;

    // N(0, 1) values; FP8 bytes with exponents 5..8 (magnitudes 1/4 .. 4) and either sign, never NaN
    void Fill(Tensor pool)
    {
        if (!Cache.Dtype.IsFp8)
        {
            pool.normal_();
            return;
        }
        using var scope = NewDisposeScope();
        pool.copy_(randint(0, 2, pool.shape, dtype: ScalarType.Byte, device: pool.device) * 0x80
            + randint(0x28, 0x48, pool.shape, dtype: ScalarType.Byte, device: pool.device));
    }

    public void Dispose()
    {
        Cache.Dispose();
        Model.Dispose();
    }
}
