using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// An RMSNorm's weight and epsilon (and a LayerNorm's bias, ModelConfig.NormBias); the normalisation is the step's
/// operation (DecoderStep.RmsNorm, AddRmsNorm).
internal sealed class RmsNorm : nn.Module
{
    [ComponentName(Name = "weight")] readonly Parameter _weight;  // (width), or a q/k norm's (heads, headDim)
    [ComponentName(Name = "bias")] readonly Parameter? _bias;     // (width): starcoder2's LayerNorms only

    public RmsNorm(long width, double eps, ScalarType dtype, Device device, bool withBias = false) : this([width], eps, dtype, device, withBias)
    {
    }

    public RmsNorm(long[] shape, double eps, ScalarType dtype, Device device, bool withBias = false) : base("RmsNorm")
    {
        _weight = ModelParameters.Empty(shape, dtype, device);
        if (withBias) _bias = ModelParameters.Empty(shape, dtype, device);
        Eps = eps;
        RegisterComponents();
    }

    public Tensor Weight => _weight;
    public double Eps { get; }

    // (numTokens, width) -> (numTokens, width)
    public Tensor Forward(DecoderStep step, Tensor x) => step.RmsNorm(x, _weight, Eps, _bias);

    /// The pre-norm block's entry: the first call starts the residual stream with x, later ones add x to it
    /// first; returns the normalised stream.
    public Tensor Forward(DecoderStep step, Tensor x, ref Tensor? residual)
    {
        if (residual is null)
        {
            residual = x;
            return step.RmsNorm(x, _weight, Eps, _bias);
        }
        (var normed, residual) = step.AddRmsNorm(x, residual, _weight, Eps, _bias);
        return normed;
    }
}
