using Serving.Engine.Cuda;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Bench;

/// A decoder of a preset's real shape with random weights, built directly on the device (no files), plus a
/// paged KV pool filled with random values (never zeros: they hide unwritten memory and run faster).
/// Weights are scaled by 1/sqrt(fan-in) so activations stay O(1) through all layers.
internal sealed class RandomModel : IDisposable
{
    private readonly List<Tensor> _owned = [];

    public RandomModel(ModelPreset preset, ScalarType dtype, Device device, int numBlocks, int blockSize)
    {
        (Preset, BlockSize, NumBlocks) = (preset, blockSize, numBlocks);
        var (hidden, ffn, d) = (preset.HiddenSize, preset.IntermediateSize, preset.HeadDim);
        var qkvRows = (preset.NumHeads + 2 * preset.NumKVHeads) * d;
        var layers = new List<FusedLayerWeights>();
        for (var i = 0; i < preset.NumLayers; i++)
        {
            layers.Add(new FusedLayerWeights(
                Norm(hidden, dtype, device), Linear(qkvRows, hidden, dtype, device), Linear(hidden, preset.NumHeads * d, dtype, device),
                Norm(hidden, dtype, device), Linear(2 * ffn, hidden, dtype, device), Linear(hidden, ffn, dtype, device)));
        }

        var embedding = Own(randn(preset.VocabSize, hidden, dtype: dtype, device: device));
        var lmHead = preset.TieWordEmbeddings ? embedding : Linear(preset.VocabSize, hidden, dtype, device);
        Weights = new FusedModelWeights(embedding, layers, Norm(hidden, dtype, device), lmHead, (float)preset.RmsNormEps);
        Cache = Enumerable.Range(0, preset.NumLayers).Select(_ => new LayerKVCache(
            Own(randn(numBlocks, blockSize, preset.NumKVHeads, d, dtype: dtype, device: device)),
            Own(randn(numBlocks, blockSize, preset.NumKVHeads, d, dtype: dtype, device: device)))).ToList();
        var frequencies = RopeTable.InverseFrequencies(preset.RopeTheta, d, preset.RopeScaling);
        using var inverse = tensor(frequencies);
        Rope = new RopeTable(inverse, Math.Min(preset.MaxPositionEmbeddings, 32768), 1.0, device);
    }

    public ModelPreset Preset { get; }
    public int BlockSize { get; }
    public int NumBlocks { get; }
    public FusedModelWeights Weights { get; }
    public IReadOnlyList<LayerKVCache> Cache { get; }
    public RopeTable Rope { get; }

    public void Dispose()
    {
        Rope.Dispose();
        _owned.ForEach(t => t.Dispose());
    }

    private Tensor Linear(int outFeatures, int inFeatures, ScalarType dtype, Device device) =>
        Own(randn(outFeatures, inFeatures, dtype: dtype, device: device).mul_(1.0 / Math.Sqrt(inFeatures)));

    // 1 + small noise: close to the trained norms' scale, but not a constant that would hide indexing errors.
    private Tensor Norm(int size, ScalarType dtype, Device device) =>
        Own(randn(size, dtype: dtype, device: device).mul_(0.1).add_(1.0));

    private Tensor Own(Tensor t)
    {
        _owned.Add(t);
        return t;
    }
}
