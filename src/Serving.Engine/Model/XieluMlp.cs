using Serving.Engine.Config;
using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Apertus's feed-forward, without a gate (Nemotron's MLP): down(xielu(up(x))), the activation's parameters learned per
/// layer (act_fn).
internal sealed class XieluMlp : FeedForward
{
    [ComponentName(Name = "up_proj")] readonly Linear _up;            // (intermediate, hidden)
    [ComponentName(Name = "down_proj")] readonly Linear _down;        // (hidden, intermediate)
    [ComponentName(Name = "act_fn")] readonly XieluParameters _activation;

    public XieluMlp(ModelConfig config, int layer, ScalarType dtype, Device device) : base("XieluMlp")
    {
        _up = new Linear(config.HiddenSize, config.IntermediateSize, config.MlpBias, dtype, device) { Target = new(layer, Lora.LoraProjection.GateUp) };
        _down = new Linear(config.IntermediateSize, config.HiddenSize, config.MlpBias, dtype, device) { Target = new(layer, Lora.LoraProjection.Down) };
        _activation = new XieluParameters(dtype, device);
        RegisterComponents();
    }

    // (numTokens, hidden) -> (numTokens, hidden); a rank's ffn columns give a partial sum (row-parallel down_proj)
    public override Tensor Forward(DecoderStep step, Tensor x) =>
        step.AllReduce(_down.Forward(step, step.Xielu(_up.Forward(step, x), _activation)));
}

/// xIELU's learned parameters, one element each, in the model's dtype: alpha_p and alpha_n (before their softplus), beta
/// and eps (stored 0-dim, read as one element).
internal sealed class XieluParameters : nn.Module
{
    [ComponentName(Name = "alpha_p")] readonly Parameter _alphaP;
    [ComponentName(Name = "alpha_n")] readonly Parameter _alphaN;
    [ComponentName(Name = "beta")] readonly Parameter _beta;
    [ComponentName(Name = "eps")] readonly Parameter _eps;

    public XieluParameters(ScalarType dtype, Device device) : base("XieluParameters")
    {
        (_alphaP, _alphaN) = (ModelParameters.Empty([1], dtype, device), ModelParameters.Empty([1], dtype, device));
        (_beta, _eps) = (ModelParameters.Empty([1], dtype, device), ModelParameters.Empty([1], dtype, device));
        RegisterComponents();
    }

    public Tensor AlphaP => _alphaP;
    public Tensor AlphaN => _alphaN;
    public Tensor Beta => _beta;
    public Tensor Eps => _eps;
}
