using Serving.Engine.Cuda;
using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// One kind of a mixture's expert weights, every expert's stacked: (experts x rows, columns), expert e's rows at
/// e x rows (MoeMlp's gate and up: 2F rows an expert; its down: hidden rows). Loaded like any parameter, or made
/// unallocated for the loader to Allocate; then it may be stored as FP8 (QuantizeToFp8, --quantization fp8 or an FP8
/// checkpoint's experts), an Fp8Weight an expert: each expert's products then run on FP8 tensor cores, as its own
/// projection's would (one scale an expert online, as vLLM's fp8 method scales experts; the checkpoint's own otherwise).
internal sealed class ExpertWeights : nn.Module, IFp8Storable
{
    [ComponentName(Name = "weight")] readonly Parameter _weight;   // (experts x rows, columns); no rows unallocated or once FP8
    Fp8Weight[] _fp8 = [];
    Tensor? _checkpointFp8Scales;

    public ExpertWeights(int experts, long rows, long columns, ScalarType dtype, Device device, bool unallocated = false) : base("ExpertWeights")
    {
        (Experts, Rows, Columns, Unallocated) = (experts, rows, columns, unallocated);
        _weight = ModelParameters.Empty([unallocated ? 0 : experts * rows, columns], dtype, device);
        RegisterComponents();
    }

    public int Experts { get; }

    /// Rows of one expert's weight.
    public long Rows { get; }
    public long Columns { get; }

    public Parameter Weight => _weight;
    public long[] Shape => [Experts * Rows, Columns];
    public long PartRows => Rows;
    public bool Unallocated { get; private set; }

    public void Allocate()
    {
        if (!Unallocated) throw new InvalidOperationException("the experts' weights are allocated already");
        ModelParameters.Allocate(_weight, Shape);
        Unallocated = false;
    }

    /// Each expert's rows of x (slots, columns), grouped by expert, times its weight transposed: (slots, rows), in the
    /// caller's dispose scope. FP8 experts run a product each (their groups read on the host).
    public Tensor Forward(DecoderStep step, Tensor x, ExpertGroups groups) => _fp8.Length > 0
        ? groups.Run(group => _fp8[group.Expert].Products.Linear(x.narrow(0, group.Start, group.Count), _fp8[group.Expert], null))
          ?? empty(0, Rows, x.dtype, x.device)
        : step.ExpertsLinear(x, _weight, Rows, groups);

    /// Whether the fused backend runs these experts' products without reading their groups on the host
    /// (FusedKernels.TakesExperts: 16-bit weights of its shapes; not FP8 ones).
    public bool GroupedOnTheDevice => _fp8.Length == 0 && FusedKernels.TakesExperts(_weight.dtype, Rows, Columns);

    public bool TakesFp8Shape => Fp8Products.Takes(Rows, Columns);

    /// (experts x rows, 1) for scales per tensor or row, (experts x rows, columns / 128) for 128 x 128 blocks.
    public Tensor? CheckpointFp8Scales
    {
        get => _checkpointFp8Scales;
        set
        {
            _checkpointFp8Scales?.Dispose();
            _checkpointFp8Scales = value;
        }
    }

    public bool TakesCheckpointScales(Fp8Products products)
    {
        using var scope = NewDisposeScope();
        return _checkpointFp8Scales is { } scales
            && Enumerable.Range(0, Experts).All(expert => products.TakesStoredScales(Rows, Columns, ExpertRows(scales, expert)));
    }

    public IReadOnlyList<Fp8Weight> Fp8Parts => _fp8;

    public void QuantizeToFp8(Fp8Products products)
    {
        if (_fp8.Length > 0) throw new InvalidOperationException("the experts' weights are FP8 already");
        var fp8 = new Fp8Weight[Experts];
        using var scope = NewDisposeScope();   // the experts' rows; their FP8 weights outlive it (QuantizeWeight's)
        try
        {
            for (var expert = 0; expert < Experts; expert++)
                fp8[expert] = products.QuantizeWeight(ExpertRows(_weight, expert),
                    _checkpointFp8Scales is { } scales ? ExpertRows(scales, expert) : null);
        }
        catch
        {
            foreach (var weight in fp8) weight?.Dispose();
            throw;
        }
        _fp8 = fp8;
        CheckpointFp8Scales = null;
        ModelParameters.Release(_weight);
    }

    // expert's rows of a tensor of every expert's, stacked as the weight is
    Tensor ExpertRows(Tensor stacked, int expert) => stacked.narrow(0, expert * Rows, Rows);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var weight in _fp8) weight.Dispose();
            _checkpointFp8Scales?.Dispose();
        }
        base.Dispose(disposing);
    }
}
