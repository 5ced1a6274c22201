using Serving.Engine.Cuda;
using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// y = x W^T (+ b). Weights start uninitialised (torch.empty): the loader fills every row from the checkpoint,
/// which is cheaper than the random init of nn.Linear on billion-parameter models; or, made unallocated, with no rows
/// until the loader allocates them as it reaches the weight (Allocate). Once loaded, a decoder projection may be stored
/// as FP8 instead (QuantizeToFp8, --quantization fp8): its products then run on FP8 tensor cores.
internal sealed class Linear : nn.Module<Tensor, Tensor>, IFp8Storable
{
    [ComponentName(Name = "weight")] readonly Parameter _weight;  // (outFeatures, inFeatures); (0, inFeatures) once FP8
    [ComponentName(Name = "bias")] readonly Parameter? _bias;     // (outFeatures)
    Fp8Weight? _fp8;
    Tensor? _checkpointFp8Scales;

    /// unallocated: the weight starts with no rows (the bias does not), for the loader to Allocate.
    public Linear(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Device device, bool unallocated = false) : base("Linear")
    {
        (InFeatures, OutFeatures) = (inFeatures, outFeatures);
        _weight = ModelParameters.Empty([unallocated ? 0 : outFeatures, inFeatures], dtype, device);
        _bias = hasBias ? ModelParameters.Empty([outFeatures], dtype, device) : null;
        Unallocated = unallocated;
        RegisterComponents();
    }

    public Parameter Weight => _weight;
    public Parameter? Bias => _bias;
    public long InFeatures { get; }
    public long OutFeatures { get; }
    public long[] Shape => [OutFeatures, InFeatures];
    public long PartRows => OutFeatures;

    /// Whether the weight has no storage yet (made unallocated and not yet Allocate'd).
    public bool Unallocated { get; private set; }

    /// Gives an unallocated weight its (outFeatures, inFeatures) of the model's type, uninitialised, on the device.
    public void Allocate()
    {
        if (!Unallocated) throw new InvalidOperationException("the weight is allocated already");
        ModelParameters.Allocate(_weight, Shape);
        Unallocated = false;
    }

    /// The weight as FP8 values and scale once QuantizeToFp8 has run; null while it is stored in the model's type.
    public Fp8Weight? Fp8 => _fp8;

    public IReadOnlyList<Fp8Weight> Fp8Parts => _fp8 is null ? [] : [_fp8];

    public bool TakesFp8Shape => Fp8Products.Takes(OutFeatures, InFeatures);

    /// (out, 1) for scales per tensor or row, (out, in / 128) for 128 x 128 blocks.
    public Tensor? CheckpointFp8Scales
    {
        get => _checkpointFp8Scales;
        set
        {
            _checkpointFp8Scales?.Dispose();
            _checkpointFp8Scales = value;
        }
    }

    /// Where this projection sits, for LoRA adapters to find their update of it (null: no adapter changes it).
    public Lora.LoraTarget? Target { get; init; }

    /// Whether it is a decoder layer's projection (the attention's, an MLP's or a shared expert's), one the model may
    /// store as FP8 (CausalLM.Fp8Projections); false for routers, gates and heads.
    public bool DecoderProjection { get; init; }

    // (numTokens, inFeatures) -> (numTokens, outFeatures)
    public override Tensor forward(Tensor x) => _fp8 is { } fp8 ? fp8.Products.Linear(x, fp8, _bias) : nn.functional.linear(x, _weight, _bias);

    /// The product as the step runs it (the fused backend may pick the cuBLAS algorithm, see DecoderStep.Linear; an FP8
    /// weight's runs on FP8 tensor cores on any backend), plus the updates of the step's LoRA adapters on their rows.
    public Tensor Forward(DecoderStep step, Tensor x)
    {
        var y = _fp8 is { } fp8 ? fp8.Products.Linear(x, fp8, _bias) : step.Linear(x, _weight, _bias);
        return step.Lora is { } lora && Target is { } target ? lora.Add(target, x, y) : y;
    }

    public bool TakesCheckpointScales(Fp8Products products) =>
        _checkpointFp8Scales is { } scales && products.TakesStoredScales(OutFeatures, InFeatures, scales);

    public void QuantizeToFp8(Fp8Products products)
    {
        if (_fp8 is not null) throw new InvalidOperationException("the weight is FP8 already");
        _fp8 = products.QuantizeWeight(_weight, _checkpointFp8Scales);
        CheckpointFp8Scales = null;
        ModelParameters.Release(_weight);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _fp8?.Dispose();
            _checkpointFp8Scales?.Dispose();
        }
        base.Dispose(disposing);
    }
}
