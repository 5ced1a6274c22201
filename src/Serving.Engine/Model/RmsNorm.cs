using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// RMSNorm as transformers computes it: normalise in float32, cast back, then scale.
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] readonly Parameter _weight;  // (hidden)
    readonly double _eps;

    public RmsNorm(long hidden, double eps, ScalarType dtype, Device device) : base("RmsNorm")
    {
        _weight = ModelParameters.Empty([hidden], dtype, device);
        _eps = eps;
        RegisterComponents();
    }

    // (numTokens, hidden) -> (numTokens, hidden)
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to_type(ScalarType.Float32);
        var variance = x32.pow(2).mean([-1], keepdim: true);                  // (numTokens, 1)
        var normalised = (x32 * (variance + _eps).rsqrt()).to_type(x.dtype);
        return (_weight * normalised).MoveToOuterDisposeScope();
    }
}
