using Serving.Engine.Config;
using Serving.Engine.KVCache;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// A checkpoint ready to run: its configs and the decoder with weights on the target device.
/// Forward calls must come from one thread (the engine thread); the caller's dispose scope owns the results.
public sealed class LoadedModel : IDisposable
{
    readonly LlamaModel _model;

    internal LoadedModel(string directory, LlamaModel model, GenerationConfig generation)
    {
        Directory = directory;
        _model = model;
        Generation = generation;
    }

    public string Directory { get; }
    public ModelConfig Config => _model.Config;
    public GenerationConfig Generation { get; }
    public ScalarType Dtype => _model.Dtype;
    public string DtypeName => ModelDtype.Name(Dtype);
    public Device Device => _model.Device;
    /// Bytes of KV cache per token in this model's dtype.
    public long KVBytesPerToken => KVCacheSpec.For(Config, Dtype).BytesPerToken;

    /// Run steps through the fused CUDA kernels where they apply (default); false forces the plain TorchSharp path.
    public bool UseFusedKernels { get => _model.UseFusedKernels; set => _model.UseFusedKernels = value; }

    /// Whether Forward runs the fused CUDA kernels (CUDA device, bfloat16 or float32, a supported shape).
    public bool FusedKernelsActive => _model.FusedKernelsActive;

    /// A KV pool matching this model (dtype, device, layers, KV heads).
    public PagedKVCache CreateKVCache(int numBlocks, int blockSize) => new(Config, numBlocks, blockSize, Dtype, Device);

    /// Runs one step and returns the logits of each sequence's last new token: (numSeqs, vocab) float32.
    public Tensor Forward(BatchInputs inputs, PagedKVCache cache) => _model.LastTokenLogits(inputs, cache);

    /// Runs one step and returns the logits of every new token: (numTokens, vocab) float32 (prompt logprobs, perplexity).
    public Tensor ForwardAllLogits(BatchInputs inputs, PagedKVCache cache) => _model.AllLogits(inputs, cache);

    public void Dispose() => _model.Dispose();
}
