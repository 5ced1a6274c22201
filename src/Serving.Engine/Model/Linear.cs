using Serving.Engine.Model.Backends;
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

    /// Where this projection sits, for LoRA adapters to find their update of it (null: no adapter changes it).
    public Lora.LoraTarget? Target { get; init; }

    // (numTokens, inFeatures) -> (numTokens, outFeatures)
    public override Tensor forward(Tensor x) => nn.functional.linear(x, _weight, _bias);

    /// The product as the step runs it (the fused backend may pick the cuBLAS algorithm, see DecoderStep.Linear), plus
    /// the updates of the step's LoRA adapters on their rows.
    public Tensor Forward(DecoderStep step, Tensor x)
    {
        var y = step.Linear(x, _weight, _bias);
        return step.Lora is { } lora && Target is { } target ? lora.Add(target, x, y) : y;
    }
}
