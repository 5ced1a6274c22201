using Serving.Engine.Cuda;
using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// One kind of a mixture's expert weights, every expert's stacked: (experts x rows, columns), expert e's rows at
/// e x rows (MoeMlp's and GptOssExperts' gate and up: 2F rows an expert; their down: hidden rows). Loaded like any parameter, or made
/// unallocated for the loader to Allocate; then it may be stored as FP8 (QuantizeToFp8, --quantization fp8 or an FP8
/// checkpoint's experts), an Fp8Weight an expert (all in one allocation, Fp8Experts, where they share a shape and
/// scaling): each expert's products then run on FP8 tensor cores, as its own projection's would (one scale an expert
/// online, as vLLM's fp8 method scales experts; the checkpoint's own otherwise).
/// A step's products run either in one kernel over the rows grouped on the device (the fused backend's decode steps and
/// steps of few rows an expert: DecoderStep.GroupsExpertsOnTheDevice), or a product a group counted on the host.
internal sealed class ExpertWeights : nn.Module, IFp8Storable
{
    [ComponentName(Name = "weight")] readonly Parameter _weight;   // (experts x rows, columns); no rows unallocated or once FP8
    IReadOnlyList<Fp8Weight> _fp8 = [];   // each expert's; Fp8Experts' parts where stacked
    Fp8Experts? _fp8Stacked;
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
    /// caller's dispose scope. gather: x holds the step's tokens (numTokens, columns), each grouped row its token's
    /// (ExpertGroups.Tokens): the gate and up products read the routed rows where they lie (the kernel over groups the
    /// device counts), or gathered first.
    public Tensor Forward(DecoderStep step, Tensor x, ExpertGroups groups, bool gather = false)
    {
        var slots = groups.Tokens.size(0);
        if (OnTheDevice(step, slots))
        {
            var output = empty(slots, Rows, x.dtype, x.device);
            if (_fp8Stacked is { } stacked) step.ExpertsLinear(x.contiguous(), stacked, groups, gather, output);
            else step.ExpertsLinear(x.contiguous(), _weight, groups, gather, output);
            return output;
        }
        if (gather) x = x.index_select(0, groups.Tokens);
        if (_fp8.Count == 0)
            return groups.Run(group => step.Linear(x.narrow(0, group.Start, group.Count), _weight.narrow(0, group.Expert * Rows, Rows), null))
                ?? empty(0, Rows, x.dtype, x.device);
        // FP8 experts: the groups cuBLASLt multiplies take x quantized once (experts scaled per tensor), not each its own
        var products = _fp8[0].Products;
        var quantized = groups.OnHost.Any(group => products.TakesQuantizedOnce(_fp8[group.Expert], group.Count)) ? products.QuantizeOnce(x) : null;
        return groups.Run(group =>
        {
            var weight = _fp8[group.Expert];
            return quantized is not null && products.TakesQuantizedOnce(weight, group.Count)
                ? products.Linear(quantized, group.Start, group.Count, weight)
                : products.Linear(x.narrow(0, group.Start, group.Count), weight, null);
        }) ?? empty(0, Rows, x.dtype, x.device);
    }

    /// An activation of Forward's product, whose rows are each expert's gates and ups as glu says: (slots, Rows / 2), in
    /// the product's own kernel where the device groups 16-bit experts, else the product then SiluAndMul or ClampedGlu.
    public Tensor ForwardGlu(DecoderStep step, Tensor x, ExpertGroups groups, GluActivation glu, bool gather = false)
    {
        var slots = groups.Tokens.size(0);
        if (_fp8.Count > 0 || !OnTheDevice(step, slots))
        {
            var product = Forward(step, x, groups, gather);
            return glu switch
            {
                GluActivation.SiluAndMul => step.SiluAndMul(product),
                GluActivation.Clamped clamped => step.ClampedGlu(product, clamped.Bias, groups.ExpertOfRow, clamped.Limit),
                _ => throw new ArgumentException($"no activation {glu}", nameof(glu)),
            };
        }
        var output = empty(slots, Rows / 2, x.dtype, x.device);
        step.ExpertsLinear(x.contiguous(), _weight, groups, gather, output, glu);
        return output;
    }

    // whether this step runs the products over groups the device counts
    bool OnTheDevice(DecoderStep step, long slots) => GroupedOnTheDevice && step.GroupsExpertsOnTheDevice(slots, Experts, RowsAPass);

    /// Whether the fused backend may run these experts' products in one kernel over groups the device counts: 16-bit
    /// weights of FusedKernels.TakesExperts' shapes, or FP8 ones stacked (Fp8Products.TakesExperts; not where the
    /// few-rows kernels are turned off, --no-fp8-few-rows).
    public bool GroupedOnTheDevice => _fp8.Count == 0
        ? FusedKernels.TakesExperts(_weight.dtype, Rows, Columns)
        : _fp8Stacked is { } stacked && stacked.Products.FewRowsKernel && Fp8Products.TakesExperts(Columns);

    // the rows an expert's kernel multiplies in one pass over its weight
    int RowsAPass => _fp8.Count == 0 ? FusedKernels.ExpertRowsAPass : Fp8Products.FewRows;

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
        if (_fp8.Count > 0) throw new InvalidOperationException("the experts' weights are FP8 already");
        var fp8 = new Fp8Weight[Experts];
        try
        {
            using (var scope = NewDisposeScope())   // the experts' rows; their FP8 weights outlive it (QuantizeWeight's)
                for (var expert = 0; expert < Experts; expert++)
                    fp8[expert] = products.QuantizeWeight(ExpertRows(_weight, expert),
                        _checkpointFp8Scales is { } scales ? ExpertRows(scales, expert) : null);
            ModelParameters.Release(_weight);       // before the stacked copy: at most two copies of the experts at once
            _fp8Stacked = products.Stack(fp8);
        }
        catch
        {
            foreach (var weight in fp8) weight?.Dispose();
            throw;
        }
        _fp8 = _fp8Stacked?.Parts ?? fp8;
        CheckpointFp8Scales = null;
    }

    // expert's rows of a tensor of every expert's, stacked as the weight is
    Tensor ExpertRows(Tensor stacked, int expert) => stacked.narrow(0, expert * Rows, Rows);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            if (_fp8Stacked is not null) _fp8Stacked.Dispose();
            else foreach (var weight in _fp8) weight.Dispose();
            _checkpointFp8Scales?.Dispose();
        }
        base.Dispose(disposing);
    }
}
