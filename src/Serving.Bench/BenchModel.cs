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
    public int ElementSize => Model.Dtype == ScalarType.Float32 ? 4 : 2;

    /// Bytes a decode step of numTokens tokens reads from the weights: every layer, the final norm and the LM
    /// head, plus one embedding row per token (biases, absent from the presets, are not counted).
    public long DecodeWeightBytes(int numTokens)
    {
        var c = Config;
        long h = c.HiddenSize;
        var perLayer = 2 * h + h * (c.QSize + 2L * c.KVSize) + (long)c.QSize * h + 3 * h * c.IntermediateSize;
        return ElementSize * (c.NumHiddenLayers * perLayer + h + c.VocabSize * h + numTokens * h);
    }

    /// All weight bytes resident on the device (the embedding table counted once more when untied).
    public long ResidentWeightBytes => WeightBytes(Config, Model.Dtype);

    /// The resident weight bytes of a model of this shape and dtype, before loading it.
    public static long WeightBytes(ModelConfig c, ScalarType dtype)
    {
        long h = c.HiddenSize;
        var perLayer = 2 * h + h * (c.QSize + 2L * c.KVSize) + (long)c.QSize * h + 3 * h * c.IntermediateSize;
        var elements = c.NumHiddenLayers * perLayer + h + c.VocabSize * h + (c.TieWordEmbeddings ? 0 : c.VocabSize * h);
        return (dtype == ScalarType.Float32 ? 4 : 2) * elements;
    }

    public long KVBytesPerToken => Model.KVBytesPerToken;

    public void Dispose()
    {
        Cache.Dispose();
        Model.Dispose();
    }
}
