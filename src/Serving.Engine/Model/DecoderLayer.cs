using Serving.Engine.Config;
using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// One pre-norm transformer block: h = x + attn(norm(x)); out = h + mlp(norm(h)). The residual stream is carried
/// beside the block's output and added by the next norm (add + norm is one operation), so a layer returns mlp(...)
/// and leaves h in residual. With sandwich norms (gemma 2 and 3) the attention and MLP outputs are normed too before
/// they join the stream: h = x + norm(attn(norm(x))); out = h + norm(mlp(norm(h))); with a residual multiplier
/// (granite) they are scaled instead: h = x + m attn(norm(x)).
internal sealed class DecoderLayer : nn.Module
{
    [ComponentName(Name = "input_layernorm")] readonly RmsNorm? _attentionNorm;              // null without pre-norms (olmo2)
    [ComponentName(Name = "self_attn")] readonly Attention _attention;
    [ComponentName(Name = "attention_output_norm")] readonly RmsNorm? _attentionOutputNorm;  // sandwich norms only
    [ComponentName(Name = "post_attention_layernorm")] readonly RmsNorm? _mlpNorm;           // Llama's name for the pre-MLP norm
    [ComponentName(Name = "mlp")] readonly FeedForward _mlp;                                // dense, or a mixture of experts (gpt-oss's own)
    [ComponentName(Name = "mlp_output_norm")] readonly RmsNorm? _mlpOutputNorm;              // sandwich norms only
    // granite's; a Scalar the layer holds (a temporary one can be finalized by the GC while the native call reads it)
    readonly Scalar? _residualMultiplier;
    readonly bool _parallel;                                                                // cohere

    /// projectionsUnallocated: the attention's and the MLP's projections (a mixture's experts too, not gpt-oss's) start
    /// with no rows (IFp8Storable.Allocate).
    public DecoderLayer(ModelConfig config, int layer, ScalarType dtype, Device device, bool projectionsUnallocated = false) : base("DecoderLayer")
    {
        if (config.PreNorms)
        {
            _attentionNorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device, config.NormBias);
            if (!config.ParallelBlock) _mlpNorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device, config.NormBias);
        }
        _parallel = config.ParallelBlock;
        _attention = new Attention(config, layer, dtype, device, projectionsUnallocated);
        _mlp = !config.IsExpertLayer(layer)
            ? (config.GatedMlp ? new Mlp(config, layer, dtype, device, projectionsUnallocated) : new UngatedMlp(config, layer, dtype, device, projectionsUnallocated))
            : config.ExpertSwigluLimit is null ? new MoeMlp(config, dtype, device, projectionsUnallocated) : new GptOssExperts(config, dtype, device, projectionsUnallocated);
        _residualMultiplier = config.ResidualMultiplier?.ToScalar();
        if (config.SandwichNorms)
        {
            _attentionOutputNorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
            _mlpOutputNorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        }
        RegisterComponents();
    }

    /// Whether a step on the fused backend reads the device's results on the host in this layer (FeedForward.WaitsForTheHost).
    public bool WaitsForTheHost => _mlp.WaitsForTheHost;

    // hidden (numTokens, hidden): the previous layer's mlp output (or the embeddings) -> this layer's mlp output;
    // residual (numTokens, hidden): the stream before the previous output is added (null before the first layer)
    public Tensor Forward(DecoderStep step, Tensor hidden, ref Tensor? residual)
    {
        hidden = Enter(_attentionNorm, step, hidden, ref residual);
        if (_parallel) return _attention.Forward(step, hidden).add(_mlp.Forward(step, hidden), HeldScalars.One);   // both join the stream at the next add
        hidden = _attention.Forward(step, hidden);
        if (_attentionOutputNorm is not null) hidden = _attentionOutputNorm.Forward(step, hidden);
        if (_residualMultiplier is { } scale) hidden = hidden * scale;
        hidden = Enter(_mlpNorm, step, hidden, ref residual);
        hidden = _mlp.Forward(step, hidden);
        if (_mlpOutputNorm is not null) hidden = _mlpOutputNorm.Forward(step, hidden);
        return _residualMultiplier is { } multiplier ? hidden * multiplier : hidden;
    }

    /// A sublayer's input: the stream with the last output added, normed (the pre-norm) or not (olmo2).
    static Tensor Enter(RmsNorm? norm, DecoderStep step, Tensor hidden, ref Tensor? residual)
    {
        if (norm is not null) return norm.Forward(step, hidden, ref residual);
        residual = residual is null ? hidden : residual.add(hidden, HeldScalars.One);
        return residual;
    }
}
