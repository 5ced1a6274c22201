using Serving.Engine.Config;
using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// A feed-forward without a gate (Nemotron's MLP): down(act(up(x))), act Apertus's xIELU with parameters learned per layer
/// (act_fn), starcoder2's GELU (tanh approximation) or Nemotron's ReLU^2.
internal sealed class UngatedMlp : FeedForward
{
    [ComponentName(Name = "up_proj")] readonly Linear _up;            // (intermediate, hidden)
    [ComponentName(Name = "down_proj")] readonly Linear _down;        // (hidden, intermediate)
    [ComponentName(Name = "act_fn")] readonly XieluParameters? _xielu; // xIELU only
    readonly MlpActivation _activation;

    /// projectionsUnallocated: the weights start with no rows (Linear.Allocate).
    public UngatedMlp(ModelConfig config, int layer, ScalarType dtype, Device device, bool projectionsUnallocated = false) : base("UngatedMlp")
    {
        if (config.Activation == MlpActivation.Silu)
            throw new ArgumentException("an MLP without a gate takes xIELU, GELU or ReLU^2, not SiLU", nameof(config));
        _activation = config.Activation;
        _up = new Linear(config.HiddenSize, config.IntermediateSize, config.MlpBias, dtype, device, projectionsUnallocated)
        {
            Target = new(layer, Lora.LoraProjection.GateUp),
            DecoderProjection = true,
        };
        _down = new Linear(config.IntermediateSize, config.HiddenSize, config.MlpBias, dtype, device, projectionsUnallocated)
        {
            Target = new(layer, Lora.LoraProjection.Down),
            DecoderProjection = true,
        };
        if (config.Activation == MlpActivation.Xielu) _xielu = new XieluParameters(dtype, device);
        RegisterComponents();
    }

    // (numTokens, hidden) -> (numTokens, hidden); a rank's ffn columns give a partial sum (row-parallel down_proj)
    public override Tensor Forward(DecoderStep step, Tensor x)
    {
        var up = _up.Forward(step, x);
        var activated = _xielu is null ? step.UngatedActivation(up, _activation) : step.Xielu(up, _xielu);
        return step.AllReduce(_down.Forward(step, activated));
    }
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
