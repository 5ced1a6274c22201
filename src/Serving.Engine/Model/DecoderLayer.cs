using Serving.Engine.Config;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// One pre-norm transformer block: h = x + attn(norm(x)); out = h + mlp(norm(h)).
internal sealed class DecoderLayer : nn.Module
{
    [ComponentName(Name = "input_layernorm")] readonly RmsNorm _attentionNorm;
    [ComponentName(Name = "self_attn")] readonly Attention _attention;
    [ComponentName(Name = "post_attention_layernorm")] readonly RmsNorm _mlpNorm;
    [ComponentName(Name = "mlp")] readonly Mlp _mlp;
    readonly int _layer;

    public DecoderLayer(ModelConfig config, int layer, ScalarType dtype, Device device) : base("DecoderLayer")
    {
        _layer = layer;
        _attentionNorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        _attention = new Attention(config, dtype, device);
        _mlpNorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        _mlp = new Mlp(config, dtype, device);
        RegisterComponents();
    }

    // x (numTokens, hidden) -> (numTokens, hidden)
    public Tensor Forward(Tensor x, StepContext step)
    {
        var h = x + _attention.Forward(_attentionNorm.forward(x), step, _layer);
        return h + _mlp.forward(_mlpNorm.forward(h));
    }
}
