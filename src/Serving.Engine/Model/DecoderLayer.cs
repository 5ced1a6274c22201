using Serving.Engine.Config;
using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// One pre-norm transformer block: h = x + attn(norm(x)); out = h + mlp(norm(h)). The residual stream is carried
/// beside the block's output and added by the next norm (add + norm is one operation), so a layer returns mlp(...)
/// and leaves h in residual.
internal sealed class DecoderLayer : nn.Module
{
    [ComponentName(Name = "input_layernorm")] readonly RmsNorm _attentionNorm;
    [ComponentName(Name = "self_attn")] readonly Attention _attention;
    [ComponentName(Name = "post_attention_layernorm")] readonly RmsNorm _mlpNorm;
    [ComponentName(Name = "mlp")] readonly Mlp _mlp;

    public DecoderLayer(ModelConfig config, int layer, ScalarType dtype, Device device) : base("DecoderLayer")
    {
        _attentionNorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        _attention = new Attention(config, layer, dtype, device);
        _mlpNorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        _mlp = new Mlp(config, layer, dtype, device);
        RegisterComponents();
    }

    // hidden (numTokens, hidden): the previous layer's mlp output (or the embeddings) -> this layer's mlp output;
    // residual (numTokens, hidden): the stream before the previous output is added (null before the first layer)
    public Tensor Forward(DecoderStep step, Tensor hidden, ref Tensor? residual)
    {
        hidden = _attentionNorm.Forward(step, hidden, ref residual);
        hidden = _attention.Forward(step, hidden);
        hidden = _mlpNorm.Forward(step, hidden, ref residual);
        return _mlp.Forward(step, hidden);
    }
}
