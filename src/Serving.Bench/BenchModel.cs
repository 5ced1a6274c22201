using Serving.Engine.Config;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Bench;

/// A preset model with random weights (the engine's own LoadedModel, so the benchmark times the real forward)
/// and a KV pool filled with random values: never zeros, which hide unwritten memory and run faster.
internal sealed class BenchModel : IDisposable
{
    public BenchModel(string preset, string dtype, Device device, int numBlocks, int blockSize)
    {
        Model = ModelLoader.LoadPreset(preset, dtype, device);
        Cache = Model.CreateKVCache(numBlocks, blockSize);
        using var noGrad = no_grad();
        for (var layer = 0; layer < Cache.NumLayers; layer++)
        {
            Cache.Keys(layer).normal_();
            Cache.Values(layer).normal_();
        }
    }

    public LoadedModel Model { get; }
    public PagedKVCache Cache { get; }
    public ModelConfig Config => Model.Config;
    public string Name => Model.Directory;
    public long KVBytesPerToken => Cache.Spec.BytesPerToken;

    public void Dispose()
    {
        Cache.Dispose();
        Model.Dispose();
    }
}
