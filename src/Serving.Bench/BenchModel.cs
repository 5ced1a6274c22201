using Serving.Engine.Config;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Bench;

/// A preset model with random weights, or a checkpoint folder (the engine's own LoadedModel, so the benchmark times
/// the real forward), and a KV pool filled with random values: never zeros, which hide unwritten memory and run
/// faster. Step times depend on the shape alone, so a checkpoint times like a preset of its shape; its rotary table
/// covers maxPositions, also past the length it was trained for. Under tensor parallelism every rank's pool is
/// filled; sizes (weights, KV bytes per token) are one GPU's.
internal sealed class BenchModel : IDisposable
{
    /// The model (a preset's name or a checkpoint folder) on the device(s), its rotary table covering maxPositions,
    /// and the pool dtype --kv-cache-dtype means for it: what the pool's size is planned from (ShapePlan) before the
    /// BenchModel is made. quantization fp8: the decoder projections stored as FP8 (--quantization fp8); fp8-channel and
    /// fp8-block: the same with a scale per output channel or per 128 x 128 block, as an FP8-dynamic checkpoint of them
    /// or a DeepSeek / Qwen -FP8 one is served.
    public static (LoadedModel Model, KVCacheDtype CacheDtype) Load(string model, string dtype, string kvCacheDtype, Device device,
        int maxPositions, int tensorParallelSize = 1, string? quantization = null)
    {
        var loaded = ModelLoader.Load(model, dtype, device, tensorParallelSize: tensorParallelSize, quantizeFp8: quantization == "fp8");
        try
        {
            if (quantization == "fp8") loaded.QuantizeWeightsToFp8();
            if (quantization is "fp8-channel" or "fp8-block")
            {
                loaded.ScaleProjectionsAsCheckpoint(perBlock: quantization == "fp8-block");
                if (loaded.KeepCheckpointFp8() == 0 || loaded.CheckpointFp8Left is not null)
                    throw new InvalidOperationException($"-q {quantization}: not every projection is FP8 ({loaded.CheckpointFp8Left ?? "none is"})");
            }
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
        loaded.MaxPositions = Math.Max(loaded.MaxPositions, maxPositions);
        return (loaded, KVCacheDtype.Resolve(kvCacheDtype, loaded.Dtype));
    }

    /// Takes the loaded model (Load) and gives it a pool of numBlocks on every rank.
    public BenchModel(string name, LoadedModel model, KVCacheDtype cacheDtype, int numBlocks, int blockSize)
    {
        Model = model;
        var tensorParallelSize = model.TensorParallelSize;
        Cache = Model.CreateKVCache(numBlocks, blockSize, cacheDtype);
        Name = (cacheDtype == KVCacheDtype.Of(Model.Dtype) ? name : $"{name} [{cacheDtype} KV]") + (model.WeightsFp8 ? " [fp8 weights]" : "")
            + (tensorParallelSize == 1 ? "" : $" tp{tensorParallelSize}");
        using var noGrad = no_grad();
        foreach (var pool in Cache.RankPools.Prepend(Cache))
        {
            for (var layer = 0; layer < pool.NumLayers; layer++)
            {
                Fill(pool.Keys(layer));
                Fill(pool.Values(layer));
            }
        }
        if (Model.Device.type == TorchSharp.DeviceType.CUDA) foreach (var rankDevice in Model.Devices) cuda.synchronize(rankDevice);
    }

    public LoadedModel Model { get; }
    public PagedKVCache Cache { get; }
    public ModelConfig Config => Model.Config;
    public string Name { get; }
    public long KVBytesPerToken => Cache.Spec.BytesPerToken;

    // N(0, 1) values, drawn in place; FP8 bytes as the kernel checks draw them (never NaN)
    void Fill(Tensor pool)
    {
        if (!Cache.Dtype.IsFp8)
        {
            pool.normal_();
            return;
        }
        using var scope = NewDisposeScope();
        pool.copy_(KVPoolValues.Random(Cache.Dtype, pool.shape, pool.device));
    }

    public void Dispose()
    {
        Cache.Dispose();
        Model.Dispose();
    }
}
