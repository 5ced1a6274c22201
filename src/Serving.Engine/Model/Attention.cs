using Serving.Engine.Config;
using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Grouped-query self-attention: q, k, v in one fused projection, an optional norm of q and k (ModelConfig.QkNorm) before
/// or after the rotary positions, the K/V write, paged attention over one KV head per group (with gpt-oss's sinks), o_proj.
internal sealed class Attention : nn.Module
{
    [ComponentName(Name = "qkv_proj")] readonly Linear _qkv;   // (qSize + 2 * kvSize, hidden): q rows, k rows, v rows
    [ComponentName(Name = "o_proj")] readonly Linear _output;  // (hidden, qSize)
    [ComponentName(Name = "q_norm")] readonly RmsNorm? _queryNorm;  // (headDim), (numHeads, headDim) or (qSize): QkNormShape
    [ComponentName(Name = "k_norm")] readonly RmsNorm? _keyNorm;    // (headDim), (numKVHeads, headDim) or (kvSize)
    [ComponentName(Name = "sinks")] readonly Parameter? _sinks;     // (numHeads), gpt-oss only
    readonly int _layer;
    readonly bool _normAfterRope;   // Hunyuan's: q_norm and k_norm of the rotated q and k

    /// projectionsUnallocated: qkv_proj's and o_proj's weights start with no rows (Linear.Allocate).
    public Attention(ModelConfig config, int layer, ScalarType dtype, Device device, bool projectionsUnallocated = false) : base("Attention")
    {
        (_layer, _normAfterRope) = (layer, config.QkNormAfterRope);
        _qkv = new Linear(config.HiddenSize, config.QSize + 2L * config.KVSize, config.QkvBias, dtype, device, projectionsUnallocated)
        {
            Target = new(layer, Lora.LoraProjection.Qkv),
            DecoderProjection = true,
        };
        _output = new Linear(config.QSize, config.HiddenSize, config.OutputBias, dtype, device, projectionsUnallocated)
        {
            Target = new(layer, Lora.LoraProjection.Output),
            DecoderProjection = true,
        };
        if (config.QkNorm != QkNorm.None)
        {
            _queryNorm = new RmsNorm(config.QkNormShape(config.NumAttentionHeads), config.RmsNormEps, dtype, device);
            _keyNorm = new RmsNorm(config.QkNormShape(config.NumKeyValueHeads), config.RmsNormEps, dtype, device);
        }
        if (config.AttentionSinks) _sinks = ModelParameters.Empty([config.NumAttentionHeads], dtype, device);
        RegisterComponents();
    }

    // x (numTokens, hidden) -> (numTokens, hidden)
    public Tensor Forward(DecoderStep step, Tensor x)
    {
        var qkv = _qkv.Forward(step, x);                                           // (numTokens, qSize + 2 * kvSize)
        if (_queryNorm is null)
            qkv = step.RotaryAndCacheWrite(qkv, _layer);
        else if (!_normAfterRope)
            qkv = step.HeadRmsNormRotaryAndCacheWrite(qkv, _queryNorm.Weight, _keyNorm!.Weight, _queryNorm.Eps, _layer);
        else
            qkv = step.CacheWrite(step.HeadRmsNorm(step.Rotary(qkv, _layer), _queryNorm.Weight, _keyNorm!.Weight, _queryNorm.Eps), _layer);
        // (numTokens, qSize) -> (numTokens, hidden); a rank's heads give a partial sum (row-parallel o_proj)
        return step.AllReduce(_output.Forward(step, step.Attention(qkv, _layer, _sinks)));
    }
}
