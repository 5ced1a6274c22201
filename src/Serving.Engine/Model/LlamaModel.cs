using Serving.Engine.Config;
using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// The Llama-family decoder (llama, mistral, qwen2) over a flat batch of tokens from several sequences.
/// Parameter names follow the checkpoint's, without the "model." prefix, except the fused qkv_proj and gate_up_proj.
internal sealed class LlamaModel : nn.Module
{
    [ComponentName(Name = "embed_tokens")] readonly Embedding _embedTokens;  // (vocab, hidden)
    [ComponentName(Name = "layers")] readonly ModuleList<DecoderLayer> _layers;
    [ComponentName(Name = "norm")] readonly RmsNorm _norm;
    [ComponentName(Name = "lm_head")] readonly Linear? _lmHead;              // (vocab, hidden); null when tied to embed_tokens
    readonly RotaryEmbedding _rotary;
    readonly Lazy<FusedDecoder?> _fused;  // the CUDA kernel path, built on first use (after the weights are loaded)

    public ModelConfig Config { get; }
    public ScalarType Dtype { get; }
    public Device Device { get; }

    public LlamaModel(ModelConfig config, ScalarType dtype, Device device) : base("LlamaModel")
    {
        (Config, Dtype, Device) = (config, dtype, device);
        _embedTokens = new Embedding(config.VocabSize, config.HiddenSize, dtype, device);
        _layers = new ModuleList<DecoderLayer>(
            Enumerable.Range(0, config.NumHiddenLayers).Select(i => new DecoderLayer(config, i, dtype, device)).ToArray());
        _norm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        _lmHead = config.TieWordEmbeddings ? null : new Linear(config.HiddenSize, config.VocabSize, false, dtype, device);
        _rotary = new RotaryEmbedding(config.Rope, config.HeadDim, dtype, device);
        RegisterComponents();
        _fused = new Lazy<FusedDecoder?>(() => FusedDecoder.TryCreate(this, Config, Dtype, Device), LazyThreadSafetyMode.None);
    }

    /// Run steps through the fused CUDA kernels where they apply (CUDA, bfloat16 or float32); false forces the
    /// plain TorchSharp path (the benchmark's "before", and a fallback). Prompt logprobs always use the plain path.
    public bool UseFusedKernels { get; set; } = true;

    /// Whether steps run through the fused kernels.
    public bool FusedKernelsActive => UseFusedKernels && _fused.Value is not null;

    /// Logits of each sequence's last new token: (numSeqs, vocab) float32.
    public Tensor LastTokenLogits(BatchInputs inputs, PagedKVCache cache) =>
        FusedKernelsActive ? RunFused(inputs, cache) : Run(inputs, cache, lastTokensOnly: true);

    /// Logits of every new token: (numTokens, vocab) float32.
    public Tensor AllLogits(BatchInputs inputs, PagedKVCache cache) => Run(inputs, cache, lastTokensOnly: false);

    Tensor Run(BatchInputs inputs, PagedKVCache cache, bool lastTokensOnly)
    {
        CheckCache(cache);
        inputs.Validate(cache.BlockSize, cache.NumBlocks);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var hidden = HiddenStates(inputs, cache);                                 // (numTokens, hidden)
        if (lastTokensOnly) hidden = hidden.index_select(0, LastTokenRows(inputs));  // (numSeqs, hidden)
        var normed = _norm.forward(hidden);
        var logits = _lmHead?.forward(normed) ?? nn.functional.linear(normed, _embedTokens.Weight);
        return logits.to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    Tensor RunFused(BatchInputs inputs, PagedKVCache cache)
    {
        CheckCache(cache);
        inputs.Validate(cache.BlockSize, cache.NumBlocks);
        using var noGrad = no_grad();
        return _fused.Value!.Forward(inputs, cache);
    }

    // -> (numTokens, hidden), before the final norm
    Tensor HiddenStates(BatchInputs inputs, PagedKVCache cache)
    {
        var ids = tensor(inputs.TokenIds.Select(id => (long)id).ToArray(), device: Device);
        var positions = tensor(inputs.Positions.Select(p => (long)p).ToArray(), device: Device);
        var (cos, sin) = _rotary.Angles(positions);
        var step = new StepContext(cache, AttentionMetadata.Build(inputs, cache.BlockSize, Device), cos, sin);
        var x = _embedTokens.forward(ids);
        foreach (var layer in _layers) x = layer.Forward(x, step);
        return x;
    }

    // (numSeqs) int64: the flat-batch row of each sequence's last new token
    Tensor LastTokenRows(BatchInputs inputs)
    {
        var rows = new long[inputs.NumSeqs];
        for (int s = 0, end = 0; s < inputs.NumSeqs; s++) rows[s] = (end += inputs.QueryLengths[s]) - 1;
        return tensor(rows, device: Device);
    }

    void CheckCache(PagedKVCache cache)
    {
        if (cache.NumLayers != Config.NumHiddenLayers || cache.NumKVHeads != Config.NumKeyValueHeads
            || cache.HeadDim != Config.HeadDim || cache.Dtype != Dtype)
            throw new ArgumentException(
                $"KV cache ({cache.NumLayers} layers, {cache.NumKVHeads} KV heads, head dim {cache.HeadDim}, {cache.Dtype}) does not fit the model " +
                $"({Config.NumHiddenLayers}, {Config.NumKeyValueHeads}, {Config.HeadDim}, {Dtype})");
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _rotary.Dispose();
            if (_fused.IsValueCreated) _fused.Value?.Dispose();
        }
        base.Dispose(disposing);
    }
}
