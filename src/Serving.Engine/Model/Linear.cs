using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// y = x W^T (+ b). Weights start uninitialised (torch.empty): the loader fills every row from the checkpoint,
/// which is cheaper than the random init of nn.Linear on billion-parameter models.
internal sealed class Linear : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] readonly Parameter _weight;  // (outFeatures, inFeatures)
    [ComponentName(Name = "bias")] readonly Parameter? _bias;     // (outFeatures)

    public Linear(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Device device) : base("Linear")
    {
        _weight = ModelParameters.Empty([outFeatures, inFeatures], dtype, device);
        _bias = hasBias ? ModelParameters.Empty([outFeatures], dtype, device) : null;
        RegisterComponents();
    }

    public Parameter Weight => _weight;

    // (numTokens, inFeatures) -> (numTokens, outFeatures)
    public override Tensor forward(Tensor x) => nn.functional.linear(x, _weight, _bias);
}

/// y = weight[ids]: the token embedding table.
internal sealed class Embedding : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] readonly Parameter _weight;  // (vocab, hidden)

    public Embedding(long vocabSize, long hidden, ScalarType dtype, Device device) : base("Embedding")
    {
        _weight = ModelParameters.Empty([vocabSize, hidden], dtype, device);
        RegisterComponents();
    }

    public Parameter Weight => _weight;

    // (numTokens) int64 -> (numTokens, hidden)
    public override Tensor forward(Tensor ids) => _weight.index_select(0, ids);
}

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

internal static class ModelParameters
{
    /// An uninitialised, frozen parameter that lives as long as its module (outside any dispose scope).
    public static Parameter Empty(long[] shape, ScalarType dtype, Device device)
    {
        var parameter = nn.Parameter(empty(shape, dtype, device), requires_grad: false);
        parameter.DetachFromDisposeScope();
        return parameter;
    }
}
