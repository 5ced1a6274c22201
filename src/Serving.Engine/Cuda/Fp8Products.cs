using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// FP8 matrix products on one GPU (sm_89 and later): y = x W^T where W is stored as E4M3 (QuantizeWeight) with one
/// scale per tensor (vLLM's online "fp8" quantization, or an FP8 checkpoint's tensor), one per output channel (an FP8
/// checkpoint's, llm-compressor's "FP8-dynamic") or one per 128 x 128 block (DeepSeek's and Qwen's -FP8 releases), and
/// each product quantizes its input x at every step, scales from its largest magnitudes: one for x where W has one
/// (dynamic per-tensor), one per token where W has one per channel (dynamic per-token, as vLLM's kernels for such
/// checkpoints), one per token and 128 columns where W has blocks (as vLLM's and DeepSeek's block kernels);
/// fp8_quantize.cu's kernels. cuBLASLt multiplies the two on FP8 tensor cores, accumulates in float32 and writes y in
/// the model's 16-bit type, scaled by both (per channel and token through its outer-vector scaling, per block through
/// its block scaling; where the library lacks the first, x per tensor and y scaled per channel after the product,
/// RowScalesRefusal; where it lacks the second, such weights are not stored in FP8, BlockScalesRefusal). A weight's bytes halve, so a decode step that reads every weight once reads half as
/// much, and the products' tensor-core rate doubles. Everything queues on libtorch's current stream (the model's during
/// a step, so a CUDA graph captures it). Up to FewRows rows (a small decode step) take fp8_few_rows.cu's kernel
/// instead, on the input as it is: one launch, no quantization of x, the weight read at a higher rate than cuBLASLt's
/// FP8 tiles reach there. The cuBLASLt algorithm for a shape and row count is the fastest of its candidates where Tune
/// timed them (at the decode graphs' batch sizes, as MatmulTuning does for 16-bit products), else cuBLASLt's first
/// choice (Fp8Products.Algorithms.cs). Owns the kernels, the cuBLASLt handle and workspace and the problem descriptions
/// of one device, used by one thread at a time (the rank's engine thread).
internal sealed unsafe partial class Fp8Products : IDisposable
{
    /// The kernel module's sources in order (both kernel files use element_types.cu's helpers).
    public static IReadOnlyList<string> SourceNames { get; } = ["element_types.cu", "fp8_quantize.cu", "fp8_few_rows.cu"];
    /// At most this many rows take fp8_few_rows.cu's kernel (input in 16 bits, one launch) where K allows (FewRowsTake):
    /// the n of its MMAs. It and the two below are the kernel's FEW_ROWS, FEW_CHUNK and FEW_WARPS (Defines).
    public const int FewRows = 8;
    /// Rows and columns of a weight's block of one scale (Fp8Scaling.PerBlock), columns of its input's group of one: the
    /// checkpoints' 128 x 128 blocks (the kernels' SCALE_BLOCK).
    public const int ScaleBlock = Weights.Fp8Weights.GroupColumns;
    const int FewRowsChunk = ScaleBlock;   // K elements of one warp step: K a multiple of it (one block's columns)
    const int FewRowsWarps = 8;            // a block's warps, splitting K
    const int FewRowsThreads = FewRowsWarps * 32;
    /// Device memory kept for cuBLASLt's workspace.
    public const long WorkspaceBytes = 32L << 20;
    const int Threads = 256;
    const int MaxPartials = 1024;          // fp8_absmax's blocks: the partial maxima fp8_quantize reduces
    const int SmallThreads = 1024;         // fp8_quantize_small's one block
    // at most this many 16-byte vectors take it (2 a thread): its two passes over more cost more than the second launch
    // (H100, llama3-8b's qkv_proj at 16 and 32 rows took 19.0 and 26.0 us with up to 16 vectors a thread, 14.8 at 64)
    const long SmallVectors = 2048;

    readonly CudaDevice _device;
    readonly Device _torchDevice;
    readonly ScalarType _dtype;
    readonly KernelModule _module;
    readonly IntPtr _absmax, _quantize, _quantizeSmall, _quantizeRows, _quantizeRowGroups, _quantizeScaledRows, _quantizeScaledBlocks;
    readonly FewRowsBuilds _fewRows, _fewRowsBlocks;   // scaled per tensor or channel; per block
    readonly IntPtr _expertsFewRows, _expertsFewRowsBlocks;
    readonly IntPtr _handle;
    readonly Tensor _workspace;
    readonly bool _dependentLaunch;
    readonly Lazy<string?> _rowScalesRefusal, _blockScalesRefusal;
    readonly Tensor _unitScale;            // 1f: the weight's scale of a per-channel product where cuBLASLt takes no vectors

    /// dtype: the model's (bfloat16 or float16), the type of the products' inputs and outputs.
    public Fp8Products(Device device, ScalarType dtype)
    {
        if (Unsupported(device, dtype) is { } reason) throw new ArgumentException(reason);
        (_device, _torchDevice, _dtype) = (CudaDevice.Open(Math.Max(device.index, 0)), device, dtype);
        _module = new KernelModule(_device, SourceNames, Defines(dtype));
        (_absmax, _quantize, _quantizeSmall) = (_module.GetFunction("fp8_absmax"), _module.GetFunction("fp8_quantize"), _module.GetFunction("fp8_quantize_small"));
        (_quantizeRows, _quantizeRowGroups) = (_module.GetFunction("fp8_quantize_rows"), _module.GetFunction("fp8_quantize_row_groups"));
        (_quantizeScaledRows, _quantizeScaledBlocks) = (_module.GetFunction("fp8_quantize_scaled_rows"), _module.GetFunction("fp8_quantize_scaled_blocks"));
        (_fewRows, _fewRowsBlocks) = (FewRowsBuilds.Of(_module, _device, "fp8_linear_few_rows"), FewRowsBuilds.Of(_module, _device, "fp8_linear_few_rows", "_blocks"));
        (_expertsFewRows, _expertsFewRowsBlocks) = (_module.GetFunction("fp8_experts_few_rows"), _module.GetFunction("fp8_experts_few_rows_blocks"));
        _handle = CublasLt.CreateHandle();
        _workspace = empty(WorkspaceBytes, ScalarType.Byte, device);
        _workspace.DetachFromDisposeScope();   // lives with this object, whatever scope creates it (a peer rank's job has one)
        _unitScale = ones(1, ScalarType.Float32, device);
        _unitScale.DetachFromDisposeScope();
        _dependentLaunch = _device.ComputeCapability >= 90 && CudaDriver.SupportsDependentLaunch;
        _rowScalesRefusal = new Lazy<string?>(RefusalOfRowScales);
        _blockScalesRefusal = new Lazy<string?>(RefusalOfBlockScales);
    }

    // fp8_few_rows.cu's two builds of one scaling and how many blocks of each the device holds at once
    readonly record struct FewRowsBuilds(IntPtr Default, int DefaultWave, IntPtr Lean, int LeanWave)
    {
        public static FewRowsBuilds Of(KernelModule module, CudaDevice device, string name, string suffix = "")
        {
            var (standard, lean) = (module.GetFunction(name + suffix), module.GetFunction(name + "_lean" + suffix));
            return new(standard, CudaDriver.MaxActiveBlocksPerMultiprocessor(standard, FewRowsThreads, 0) * device.MultiprocessorCount,
                lean, CudaDriver.MaxActiveBlocksPerMultiprocessor(lean, FewRowsThreads, 0) * device.MultiprocessorCount);
        }

        // the lean build (one chunk a warp in flight, more blocks an SM) where it runs the grid in one wave and the
        // default would take two, the second part-empty
        public IntPtr For(int blocks) => blocks > DefaultWave && blocks <= LeanWave ? Lean : Default;
    }

    /// Why products with weights scaled per channel quantize their input per tensor and scale y per channel after the
    /// product: what cuBLASLt answered when asked for vectors of scales (outer-vector scaling: 12.9 and later, sm_90);
    /// null where it takes them (each token's input then gets a scale of its own). Asked once, at the first such weight.
    public string? RowScalesRefusal => _rowScalesRefusal.Value;

    /// Why weights scaled per 128 x 128 block are not stored in FP8 here (they stay in the model's type): what cuBLASLt
    /// answered when asked for blocks of scales (12.9 and later, sm_90); null where it takes them. Asked once.
    public string? BlockScalesRefusal => _blockScalesRefusal.Value;

    /// Why FP8 products cannot run for a model of dtype on device (null when they can): they need a CUDA GPU of compute
    /// capability 8.9 or later (FP8 tensor cores) and a 16-bit model. dtype null: not known yet (the device alone).
    public static string? Unsupported(Device device, ScalarType? dtype)
    {
        if (device.type != DeviceType.CUDA) return $"FP8 weights need a CUDA GPU (the model is on {device.type.ToString().ToLowerInvariant()})";
        var capability = CudaDevice.Open(Math.Max(device.index, 0)).ComputeCapability;
        if (capability < 89) return $"FP8 weights need a GPU of compute capability 8.9 or later (Ada, Hopper); cuda:{Math.Max(device.index, 0)} is sm_{capability}";
        return dtype is null or ScalarType.BFloat16 or ScalarType.Float16 ? null
            : $"FP8 weights need a bfloat16 or float16 model (--dtype), not {Model.ModelDtype.Name(dtype.Value)}";
    }

    /// Whether a weight of this shape can be stored as FP8: cuBLASLt's FP8 products take rows of a multiple of 16
    /// bytes, and the quantization kernels whole 16-byte vectors of the input.
    public static bool Takes(long outFeatures, long inFeatures) => inFeatures % 16 == 0 && outFeatures % 16 == 0;

    /// What the kernel module is compiled with: the model's type, the e4m3 conversions, the block scales' size and the
    /// few-rows kernel's shape.
    public static IReadOnlyDictionary<string, string> Defines(ScalarType dtype) => new Dictionary<string, string>
    {
        ["ELEM_TYPE"] = dtype switch { ScalarType.BFloat16 => "1", ScalarType.Float16 => "2", _ => "0" },
        ["CACHE_TYPE"] = "3",
        ["SCALE_BLOCK"] = ScaleBlock.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["FEW_ROWS"] = FewRows.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["FEW_CHUNK"] = FewRowsChunk.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["FEW_WARPS"] = FewRowsWarps.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// weight (out, in) of the model's type on the device as FP8 values and their scales; the caller owns the result.
    /// scales: those an FP8 checkpoint stored the weight with (float32, any device), by which its values come back from
    /// the 16-bit ones they were dequantized to: (out, 1) one per row (one scale for the whole weight where they are all
    /// equal), or (out, in / ScaleBlock) one per row and block of columns, the same on each block's rows
    /// (Fp8Scaling.PerBlock; TakesStoredScales); null: one scale from the weight's largest magnitude (online
    /// quantization). Waits for the quantization, so the caller may free the weight at once.
    public Fp8Weight QuantizeWeight(Tensor weight, Tensor? scales = null)
    {
        if (weight.dim() != 2 || !Takes(weight.size(0), weight.size(1)) || weight.dtype != _dtype)
            throw new ArgumentException($"an FP8 weight is ({_dtype}) rows of a multiple of 16 columns, got {weight.dtype} [{string.Join(", ", weight.shape)}]");
        if (scales is not null && (scales.dim() != 2 || scales.size(0) != weight.size(0)))
            throw new ArgumentException($"an FP8 weight of {weight.size(0)} rows takes scales by row, got [{string.Join(", ", scales.shape)}]");
        if (scales is { } given && given.size(1) > 1 && BlockScalesRefusal is { } refusal) throw new CudaException(refusal);
        using var scope = NewDisposeScope();
        var (values, scale, scaling) = scales is null ? QuantizePerTensor(weight)
            : scales.size(1) == 1 ? QuantizeScaledRows(weight, scales.view(-1))
            : QuantizeScaledBlocks(weight, BlockScales(weight.size(0), weight.size(1), scales)
                ?? throw new ArgumentException($"scales [{string.Join(", ", scales.shape)}] of a [{string.Join(", ", weight.shape)}] weight are not one per {ScaleBlock} x {ScaleBlock} block"));
        if (scaling == Fp8Scaling.PerChannel) _ = RowScalesRefusal;   // asked now, not first in a step (a graph's capture)
        CudaDriver.SynchronizeContext();
        // they live with the weight's module, whatever scope the caller runs in (a peer rank's job has one)
        values.DetachFromDisposeScope();
        scale.DetachFromDisposeScope();
        return new Fp8Weight(values, scale, scaling, this);
    }

    /// The scales an FP8 checkpoint of weight (out, in) would store it with, as QuantizeWeight takes them: one per output
    /// channel ((out, 1): its row's largest magnitude over 448, e4m3's largest), or perBlock one per ScaleBlock x
    /// ScaleBlock block ((out, in / ScaleBlock), a block's on each of its rows; the weight whole blocks). Float32 on the
    /// weight's device, in the caller's dispose scope; for benchmarks of those checkpoints on preset shapes.
    public static Tensor CheckpointScales(Tensor weight, bool perBlock)
    {
        var (rows, columns) = (weight.size(0), weight.size(1));
        using var smallest = (1.0 / (448 * 512)).ToScalar();   // an all-zero block still divides by something
        using var scope = NewDisposeScope();
        var largest = perBlock
            ? weight.view(rows / ScaleBlock, ScaleBlock, columns / ScaleBlock, ScaleBlock).abs().amax([1, 3]).repeat_interleave(ScaleBlock, 0)
            : weight.abs().amax([1], keepdim: true);
        return HeldScalars.Divide(largest.to_type(ScalarType.Float32), 448.0).clamp_min_(smallest).MoveToOuterDisposeScope();
    }

    /// Whether QuantizeWeight serves a (rows, columns) weight by the scales its FP8 checkpoint stored it with: always
    /// one per row; one per row and ScaleBlock columns where they are one per ScaleBlock x ScaleBlock block of a weight
    /// of whole blocks and cuBLASLt takes blocks of scales here (BlockScalesRefusal).
    public bool TakesStoredScales(long rows, long columns, Tensor scales)
    {
        if (scales.dim() != 2 || scales.size(0) != rows) return false;
        if (scales.size(1) == 1) return true;
        using var blocks = BlockScales(rows, columns, scales);
        return blocks is not null && BlockScalesRefusal is null;
    }

    // scales (rows, columns / ScaleBlock) as the block scales of Fp8Scaling.PerBlock ((rows / ScaleBlock, a multiple
    // of 4 of at least columns / ScaleBlock), float32 on the CPU, a new tensor), where the weight is whole blocks and
    // each block's rows have the same; null otherwise
    static Tensor? BlockScales(long rows, long columns, Tensor scales)
    {
        if (rows % ScaleBlock != 0 || columns % ScaleBlock != 0 || scales.size(0) != rows || scales.size(1) != columns / ScaleBlock) return null;
        using var scope = NewDisposeScope();
        var byBlock = scales.to(ScalarType.Float32, CPU).reshape(rows / ScaleBlock, ScaleBlock, columns / ScaleBlock);
        var first = byBlock.select(1, 0);
        if (!byBlock.eq(first.unsqueeze(1)).all().item<bool>()) return null;
        var grid = ones(rows / ScaleBlock, (columns / ScaleBlock + 3) / 4 * 4, ScalarType.Float32);   // cuBLASLt's: rows 16 bytes apart
        grid.narrow(1, 0, columns / ScaleBlock).copy_(first);
        return grid.MoveToOuterDisposeScope();
    }

    /// x W^T (+ bias): x (rows, in) of the model's type, (rows, out) of the same type; in the caller's dispose scope.
    /// At most FewRows rows (where FewRowsTake) run fp8_few_rows.cu's kernel on x as it is (W8A16); more run cuBLASLt on
    /// x quantized per tensor, per token for a weight scaled per channel, or per token and ScaleBlock columns for one
    /// scaled per block (W8A8).
    public Tensor Linear(Tensor x, Fp8Weight weight, Tensor? bias)
    {
        if (x.dim() != 2 || x.size(1) != weight.InFeatures || x.dtype != _dtype)
            throw new ArgumentException($"an FP8 product of a ({weight.OutFeatures}, {weight.InFeatures}) weight takes ({_dtype}) rows of {weight.InFeatures}, got {x.dtype} [{string.Join(", ", x.shape)}]");
        var (m, n, k) = (x.size(0), weight.OutFeatures, weight.InFeatures);
        var fewRows = m == 0 || RunsFewRows(m, k);
        var scales = ScalesOf(weight);
        var rows = fewRows ? m : ProductRows(m, scales);
        var y = empty(rows, n, _dtype, _torchDevice);
        if (fewRows)
        {
            if (m > 0) LinearFewRows(x, weight, y);
        }
        else
        {
            using var scope = NewDisposeScope();
            var (input, inputScale) = QuantizeInput(x, scales, rows);
            MultiplyQuantized(input, inputScale, m, weight, scales, y);
        }
        if (rows != m) y = y.narrow(0, 0, m);   // the padding rows' products dropped
        if (bias is not null) y.add_(bias, HeldScalars.One);
        return y;
    }

    /// x (rows, in) quantized per tensor once, for the products of several weights scaled per tensor over its rows
    /// (a mixture's experts over their groups of the routed rows, as vLLM's fused_moe quantizes them: one scale); in
    /// the caller's dispose scope.
    public QuantizedRows QuantizeOnce(Tensor x)
    {
        if (x.dim() != 2 || x.dtype != _dtype) throw new ArgumentException($"FP8 products quantize ({_dtype}) rows, got {x.dtype} [{string.Join(", ", x.shape)}]");
        var (values, scale) = Quantize(x);
        return new QuantizedRows(values, scale);
    }

    /// Whether a product of count rows with weight runs cuBLASLt on rows quantized once (QuantizeOnce): a weight scaled
    /// per tensor, more rows than the few-rows kernel takes (those run on the 16-bit rows).
    public bool TakesQuantizedOnce(Fp8Weight weight, long count) => weight.Scaling == Fp8Scaling.PerTensor && !RunsFewRows(count, weight.InFeatures);

    /// Rows start .. start + count of x quantized once, times weight transposed: (count, out) of the model's type, in
    /// the caller's dispose scope. TakesQuantizedOnce must hold.
    public Tensor Linear(QuantizedRows x, long start, long count, Fp8Weight weight)
    {
        if (!TakesQuantizedOnce(weight, count) || x.Values.size(1) != weight.InFeatures)
            throw new ArgumentException($"an FP8 product of a ({weight.OutFeatures}, {weight.InFeatures}) {weight.Scaling} weight does not take {count} rows quantized once of {x.Values.size(1)}");
        var y = empty(count, weight.OutFeatures, _dtype, _torchDevice);
        MultiplyQuantized(x.Values.narrow(0, start, count), x.Scale, count, weight, CublasLt.Scales.Scalars, y);
        return y;
    }

    // y = (input's rows x inputScale) times (weight x its scale) transposed by cuBLASLt: a product of m rows (input's
    // and y's may be more: ProductRows), input quantized as scales says
    void MultiplyQuantized(Tensor input, Tensor inputScale, long m, Fp8Weight weight, CublasLt.Scales scales, Tensor y)
    {
        var (problem, algorithm) = ProblemFor(weight.OutFeatures, weight.InFeatures, m, scales);
        // a weight scaled per channel where cuBLASLt takes no vectors: multiplied at scale 1, y scaled after
        var scaledAfter = weight.PerChannel && scales == CublasLt.Scales.Scalars;
        problem.Run(_handle, algorithm, TensorPointer.Of(weight.Values), TensorPointer.Of(input), TensorPointer.Of(y),
            TensorPointer.Of(_workspace), WorkspaceBytes, CurrentStream, TensorPointer.Of(scaledAfter ? _unitScale : weight.Scale), TensorPointer.Of(inputScale));
        if (scaledAfter) y.mul_(weight.Scale);
    }

    /// experts (one FP8 weight each, of one shape and scaling: a mixture's experts of one kind) moved into one
    /// allocation, for ExpertsLinear; their own tensors are disposed. Null (experts untouched) where they differ.
    public Fp8Experts? Stack(IReadOnlyList<Fp8Weight> experts)
    {
        var first = experts[0];
        if (experts.Any(e => e.Scaling != first.Scaling || !e.Values.shape.SequenceEqual(first.Values.shape) || !e.Scale.shape.SequenceEqual(first.Scale.shape)))
            return null;
        using var scope = NewDisposeScope();   // what outlives it is detached
        var values = cat(experts.Select(e => e.Values).ToList(), 0);     // (experts x rows, columns)
        var scales = stack(experts.Select(e => e.Scale.reshape(-1)).ToList(), 0);   // (experts, an expert's scales)
        values.DetachFromDisposeScope();
        scales.DetachFromDisposeScope();
        var rows = first.OutFeatures;
        var parts = new Fp8Weight[experts.Count];
        for (var e = 0; e < experts.Count; e++)
        {
            parts[e] = new Fp8Weight(values.narrow(0, e * rows, rows), experts[e].Scale, first.Scaling, this);
            parts[e].Values.DetachFromDisposeScope();
            experts[e].Values.Dispose();
        }
        return new Fp8Experts(values, scales, first.Scaling, parts);
    }

    /// Whether ExpertsLinear takes experts of columns input features (k a whole number of the few-rows kernel's chunks).
    public static bool TakesExperts(long columns) => FewRowsTake(1, columns);

    /// Each expert's rows of x times its FP8 weight transposed, in one launch that reads where the groups start on the
    /// device (fp8_few_rows.cu's experts_few_rows, FewRows rows a pass over an expert's weight): x (slots, columns)
    /// contiguous, its rows grouped by expert, or with xRows the tokens' rows (as FusedKernels.ExpertsLinear); starts
    /// (experts + 1) int64, expert e's rows of x being starts[e] .. starts[e + 1]; active (experts) int64, the experts
    /// with rows first (ExpertGroups.Active); output (slots, rows). TakesExperts must hold.
    public void ExpertsLinear(Tensor x, Tensor? xRows, Fp8Experts experts, Tensor starts, Tensor active, Tensor output)
    {
        if (output.size(0) == 0) return;
        var part = experts.Parts[0];
        var (k, n) = ((int)x.size(1), (int)part.OutFeatures);
        var (xPtr, xRowsPtr, wPtr, scalePtr, startsPtr, activePtr, yPtr) = (TensorPointer.Of(x), xRows is null ? IntPtr.Zero : TensorPointer.Of(xRows),
            TensorPointer.Of(experts.Values), TensorPointer.Of(experts.Scales), TensorPointer.Of(starts), TensorPointer.Of(active), TensorPointer.Of(output));
        var scaleStride = experts.Scaling switch { Fp8Scaling.PerBlock => (int)part.Scale.size(1), Fp8Scaling.PerChannel => 1, _ => 0 };
        var expertScaleStride = experts.Scales.size(1);
        void** args = stackalloc void*[] { &xPtr, &xRowsPtr, &k, &wPtr, &scalePtr, &scaleStride, &expertScaleStride, &startsPtr, &activePtr, &yPtr, &n };
        _device.MakeCurrent();
        var function = experts.Scaling == Fp8Scaling.PerBlock ? _expertsFewRowsBlocks : _expertsFewRows;
        CudaDriver.Launch(function, ((uint)n / 16, FusedKernels.ExpertBlockRows(output.size(0), experts.Parts.Count), 1), FewRowsThreads, 0, CurrentStream,
            args, _dependentLaunch);
    }

    // the rows cuBLASLt multiplies for a product of m: with blocks of scales a multiple of 4 (the input's scales lie a
    // group's rows after another, each group 16-byte aligned: the H100's cuBLASLt has no algorithm for 9 rows), the
    // rows past x's zeros
    static long ProductRows(long m, CublasLt.Scales scales) => scales == CublasLt.Scales.Blocks ? (m + 3) / 4 * 4 : m;

    /// Whether a product of m rows with a weight of k input features runs fp8_few_rows.cu's kernel.
    public static bool FewRowsTake(long m, long k) => m <= FewRows && k % FewRowsChunk == 0;

    /// False: every product runs cuBLASLt, few rows too (the benchmark's --no-fp8-few-rows, to compare the two).
    public bool FewRowsKernel { get; set; } = true;

    // whether this product of m rows runs the few-rows kernel here (else cuBLASLt)
    bool RunsFewRows(long m, long k) => FewRowsKernel && FewRowsTake(m, k);

    /// False: products with weights scaled per channel run as where cuBLASLt takes no vectors of scales (the input per
    /// tensor, y scaled per channel after the product), to test and compare that way where it does.
    public bool OuterVectorScales { get; set; } = true;

    // how cuBLASLt scales a product with the weight: by blocks (the weight's) and groups (the input's), vectors (the
    // weight's channels, the input's tokens), or one scale each
    CublasLt.Scales ScalesOf(Fp8Weight weight) => weight.Scaling switch
    {
        Fp8Scaling.PerBlock => CublasLt.Scales.Blocks,
        Fp8Scaling.PerChannel when OuterVectorScales && RowScalesRefusal is null => CublasLt.Scales.OuterVectors,
        _ => CublasLt.Scales.Scalars,
    };

    // x quantized as cuBLASLt's scaling of the product takes it, and its scales; rows: the product's (ProductRows)
    (Tensor Values, Tensor Scales) QuantizeInput(Tensor x, CublasLt.Scales scales, long rows) => scales switch
    {
        CublasLt.Scales.Blocks => QuantizeRowGroups(x, rows),
        CublasLt.Scales.OuterVectors => QuantizeRows(x),
        _ => Quantize(x),
    };

    public void Dispose()
    {
        ClearProblems();
        _workspace.Dispose();
        _unitScale.Dispose();
        CublasLt.DestroyHandle(_handle);
        _module.Dispose();
    }

    IntPtr CurrentStream => TorchCudaStreams.Current(_device.Ordinal);

    const int Vector = 8;   // elements of a 16-bit type in the kernels' 16-byte vectors

    // x as the kernels read it: rows of contiguous 16-byte vectors starting 16-byte aligned, ld elements apart (a
    // contiguous copy where its rows are not; a clone of a view at an odd offset, which contiguous() would keep)
    static (Tensor X, long Ld) AlignedRows(Tensor x)
    {
        if (x.stride(1) != 1 || (x.size(0) > 1 && x.stride(0) % Vector != 0)) x = x.contiguous();
        if (TensorPointer.Of(x) % 16 != 0) x = x.clone();
        return (x, x.size(0) == 1 ? x.size(1) : x.stride(0));
    }

    // y = x W^T by fp8_few_rows.cu's kernel, y contiguous
    void LinearFewRows(Tensor x, Fp8Weight weight, Tensor y)
    {
        using var scope = NewDisposeScope();
        (x, var ld) = AlignedRows(x);
        var (rows, k, n) = ((int)x.size(0), (int)x.size(1), (int)weight.OutFeatures);
        var (xPtr, wPtr, scalePtr, yPtr) = (TensorPointer.Of(x), TensorPointer.Of(weight.Values), TensorPointer.Of(weight.Scale), TensorPointer.Of(y));
        var scaleStride = weight.Scaling switch { Fp8Scaling.PerBlock => (int)weight.Scale.size(1), Fp8Scaling.PerChannel => 1, _ => 0 };
        void** args = stackalloc void*[] { &xPtr, &rows, &k, &ld, &wPtr, &scalePtr, &scaleStride, &yPtr, &n };
        _device.MakeCurrent();
        var blocks = n / 16;
        var function = (weight.Scaling == Fp8Scaling.PerBlock ? _fewRowsBlocks : _fewRows).For(blocks);
        CudaDriver.Launch(function, ((uint)blocks, 1, 1), FewRowsThreads, 0, CurrentStream, args, _dependentLaunch);
    }

    // device memory that stands in for a product's scales while cuBLASLt ranks algorithms for vectors of them (it asks
    // for their address then; Run gives the step's own)
    IntPtr ScalesStandIn => TensorPointer.Of(_workspace);
}
