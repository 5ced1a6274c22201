using Serving.Engine.Config;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Grouped-query self-attention: q, k, v in one fused projection, rotary positions, paged attention, o_proj.
internal sealed class Attention : nn.Module
{
    [ComponentName(Name = "qkv_proj")] readonly Linear _qkv;  // (qSize + 2 * kvSize, hidden): q rows, k rows, v rows
    [ComponentName(Name = "o_proj")] readonly Linear _output;  // (hidden, qSize)
    readonly PagedAttention _attention;
    readonly int _numHeads, _numKVHeads, _headDim;

    public Attention(ModelConfig config, ScalarType dtype, Device device) : base("Attention")
    {
        (_numHeads, _numKVHeads, _headDim) = (config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim);
        _qkv = new Linear(config.HiddenSize, config.QSize + 2L * config.KVSize, config.QkvBias, dtype, device);
        _output = new Linear(config.QSize, config.HiddenSize, config.OutputBias, dtype, device);
        _attention = new PagedAttention(_numHeads, _numKVHeads, _headDim);
        RegisterComponents();
    }

    // x (numTokens, hidden) -> (numTokens, hidden)
    public Tensor Forward(Tensor x, StepContext step, int layer)
    {
        var tokens = x.shape[0];
        var qkv = _qkv.forward(x);                                                 // (numTokens, qSize + 2 * kvSize)
        var q = qkv.narrow(-1, 0, _numHeads * _headDim).view(tokens, _numHeads, _headDim);
        var k = qkv.narrow(-1, _numHeads * _headDim, _numKVHeads * _headDim).view(tokens, _numKVHeads, _headDim);
        var v = qkv.narrow(-1, (_numHeads + _numKVHeads) * _headDim, _numKVHeads * _headDim).view(tokens, _numKVHeads, _headDim);
        q = RotaryEmbedding.Apply(q, step.Cos, step.Sin);
        k = RotaryEmbedding.Apply(k, step.Cos, step.Sin);
        var attended = _attention.Forward(q, k, v, step.Cache.Keys(layer), step.Cache.Values(layer), step.Metadata);
        return _output.forward(attended);
    }
}
