using Serving.Engine.KVCache;
using static System.FormattableString;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// The decoder's fused CUDA kernels for one model shape, compiled with NVRTC when created and launched on one
/// stream (the engine's; TorchSharp's ops of the step run on it too, so they order without synchronization).
/// Tensors are passed by device pointer: callers keep them alive until the step's work has run (the TorchSharp
/// caching allocator only reuses memory in stream order, so a tensor disposed after its last launch is safe).
internal sealed unsafe partial class FusedKernels : IDisposable
{
    readonly KernelModule _module;
    readonly IntPtr _stream;
    readonly IntPtr _rmsNorm, _addRmsNorm, _headRmsNorm, _ropeKVWrite, _kvWrite, _gatherKV, _siluMul, _clampedGlu, _attention, _attentionReduce, _prefillAttention;
    readonly ExpertLinearKernels _expertLinear, _expertLinearSilu, _expertLinearClamped;   // 16-bit models only: plain, and each GluActivation
    readonly IntPtr[] _expertChoice;   // by the logits a lane holds: expert_choice_1, _2, _4, ..., _32 (ExpertChoiceKernels)
    readonly IntPtr[] _expertRoute;    // the same, expert_route_1 .. _32 (ExpertRouteKernels)
    readonly IntPtr _expertGroups, _expertCombine;
    readonly Tensor _routerArrivals;   // (1) int32, 0 between launches: expert_route's blocks that computed their logits
    readonly int _vector;
    readonly DecodeAttentionKernel _attentionKernel;
    readonly int _concurrentAttentionBlocks;

    /// attentionScale: the attention logits' scale (ModelConfig.SoftmaxScale); null: 1 / sqrt(head_dim). attentionSpan: the
    /// largest window when every layer slides (ModelConfig.AttentionSpan), which bounds how decode attention splits.
    public FusedKernels(CudaDevice device, IntPtr stream, KernelShape shape, float? attentionScale = null, int? attentionSpan = null)
    {
        AttentionScale = attentionScale ?? 1f / MathF.Sqrt(shape.HeadDim);
        AttentionSpan = attentionSpan;
        if (!Supports(shape, device.ComputeCapability))
            throw new ArgumentException($"no fused kernels for {shape} on sm_{device.ComputeCapability}");
        (Device, Shape, _stream) = (device, shape, stream);
        _vector = 16 / ElementSize(shape.Dtype);
        _module = new KernelModule(device, SourceNames, Defines(shape));
        (_rmsNorm, _addRmsNorm, _headRmsNorm) = (Fn("rms_norm"), Fn("add_rms_norm"), Fn("head_rms_norm"));
        (_ropeKVWrite, _kvWrite, _gatherKV, _siluMul) = (Fn("rope_kv_write"), Fn("kv_write"), Fn("gather_kv"), Fn("silu_mul"));
        _clampedGlu = Fn("clamped_glu");
        (_expertChoice, _expertRoute) = ([.. ExpertChoiceKernels.Select(Fn)], [.. ExpertRouteKernels.Select(Fn)]);
        (_expertGroups, _expertCombine) = (Fn("expert_groups"), Fn("expert_combine"));
        _attentionKernel = DecodeAttentionKernel.For(shape, device.ComputeCapability);
        (_attention, _attentionReduce) = (Fn(_attentionKernel.Name), Fn("paged_attention_reduce"));
        if (shape.Dtype != ScalarType.Float32)
            (_expertLinear, _expertLinearSilu, _expertLinearClamped) = (ExpertLinearKernels.Of(_module, ExpertLinearKernels.Plain),
                ExpertLinearKernels.Of(_module, ExpertLinearKernels.SiluAndMul), ExpertLinearKernels.Of(_module, ExpertLinearKernels.ClampedGlu));
        var sharedBytes = (int)_attentionKernel.SharedBytes;
        CudaDriver.SetFunctionAttribute(_attention, CudaDriver.FunctionAttributeMaxDynamicSharedSizeBytes, sharedBytes);
        var perMultiprocessor = CudaDriver.MaxActiveBlocksPerMultiprocessor(_attention, (int)_attentionKernel.Threads, sharedBytes);
        _concurrentAttentionBlocks = Math.Max(1, perMultiprocessor) * device.MultiprocessorCount;
        if (_attentionKernel.TensorCores)
        {
            _prefillAttention = Fn("paged_prefill_attention_mma");
            // head dim 256 stages more than the 48 KB a launch may take without asking
            CudaDriver.SetFunctionAttribute(_prefillAttention, CudaDriver.FunctionAttributeMaxDynamicSharedSizeBytes,
                (int)DecodeAttentionKernel.ChunkStagesBytes(shape));
        }
        DependentLaunch = device.ComputeCapability >= 90 && CudaDriver.SupportsDependentLaunch;
        _routerArrivals = zeros(1, ScalarType.Int32, new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, device.Ordinal)).DetachFromDisposeScope();
        TorchSharp.torch.cuda.synchronize(_routerArrivals.device);   // zero before any launch on this module's stream
    }

    /// Whether kernels are launched as programmatic dependent launches (sm_90+): each may be scheduled while the kernel
    /// before it drains its last blocks, and waits in its first statement until that one is done (the kernels' sources
    /// say so at wait_for_previous_kernel), which hides part of the gap between back-to-back kernels. On by default
    /// where the device has it; the benchmark turns it off for an A/B.
    public bool DependentLaunch { get; set; }

    /// Whether the kernels take this shape on a device of this compute capability: model in float32, bfloat16 or
    /// float16, pool in those or FP8 E4M3 (sm_89 and later); head dim a multiple of 8 and at most 256, and a head
    /// row a whole number of the attention kernel's copies; an even rotary dim; at most 64 x 128 query values per
    /// KV head (registers).
    public static bool Supports(KernelShape shape, int computeCapability) =>
        IsElementType(shape.Dtype) && (!shape.CacheDtype.IsFp8 || computeCapability >= 89)
        && shape.HeadDim % 8 == 0 && shape.HeadDim <= 256 && shape.HeadDim * shape.CacheDtype.Size % shape.CacheVectorBytes == 0
        && shape.RotaryDim % 2 == 0 && shape.RotaryDim <= shape.HeadDim
        && shape.NumHeads % shape.NumKVHeads == 0 && shape.GroupSize * shape.HeadDim <= 64 * 128;

    public CudaDevice Device { get; }
    public KernelShape Shape { get; }
    /// What the attention kernels scale q . k by before the softmax.
    public float AttentionScale { get; }
    /// The largest window when every layer slides; null: some layer attends to the whole context.
    public int? AttentionSpan { get; }

    /// The kernel sources of the module, concatenated in this order (each later file uses the earlier ones' defines).
    public static IReadOnlyList<string> SourceNames { get; } = ["element_types.cu", "decoder_kernels.cu", "paged_attention.cu", "paged_attention_mma.cu", "expert_linear.cu", "expert_routing.cu"];

    /// What the module is compiled with for a shape (decoder_kernels.cu lists them).
    public static IReadOnlyDictionary<string, string> Defines(KernelShape shape) => new Dictionary<string, string>
    {
        ["ELEM_TYPE"] = Invariant($"{TypeCode(shape.Dtype)}"),
        ["CACHE_TYPE"] = Invariant($"{TypeCode(shape.CacheDtype)}"),
        ["HEAD_DIM"] = Invariant($"{shape.HeadDim}"),
        ["CACHE_VEC_BYTES"] = Invariant($"{shape.CacheVectorBytes}"),
        ["ROTARY_DIM"] = Invariant($"{shape.RotaryDim}"),
        ["GROUP_SIZE"] = Invariant($"{shape.GroupSize}"),
        ["NORM_WEIGHT"] = Invariant($"{(int)shape.NormWeight}"),
        ["NORM_CENTERED"] = shape.NormsCentered ? "1" : "0",
        ["ROPE_INTERLEAVED"] = shape.InterleavedRope ? "1" : "0",
        ["ROPE_PRECISION"] = Invariant($"{(int)shape.RotaryPrecision}"),
        ["ATTN_SOFTCAP"] = FloatLiteral(shape.AttentionSoftcap),
        ["EXPERT_TILES"] = Invariant($"{ExpertRowsAPass / 8}"),
        ["ROUTE_TOKENS"] = Invariant($"{RouteTokens}"),
    };

    // a C float literal: 50 -> 50.0f, 1E-05 -> 1E-05f
    static string FloatLiteral(double value)
    {
        var digits = ((float)value).ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        return (digits.Contains('.') || digits.Contains('E') ? digits : digits + ".0") + "f";
    }

    /// output = RMSNorm(x) * weight. x, output (numTokens, hidden); weight (hidden).
    public void RmsNorm(Tensor x, Tensor weight, Tensor output, float eps)
    {
        var (rows, hidden) = ((uint)x.size(0), (int)x.size(1));
        var (xPtr, wPtr, outPtr) = (TensorPointer.Of(x), TensorPointer.Of(weight), TensorPointer.Of(output));
        void** args = stackalloc void*[] { &xPtr, &wPtr, &outPtr, &hidden, &eps };
        Launch(_rmsNorm, (rows, 1, 1), NormThreads(hidden), 0, args);
    }

    /// residual += x (in place), then output = RMSNorm(residual) * weight. residual, x, output (numTokens, hidden).
    public void AddRmsNorm(Tensor residual, Tensor x, Tensor weight, Tensor output, float eps)
    {
        var (rows, hidden) = ((uint)residual.size(0), (int)residual.size(1));
        var (rPtr, xPtr, wPtr, outPtr) = (TensorPointer.Of(residual), TensorPointer.Of(x), TensorPointer.Of(weight), TensorPointer.Of(output));
        void** args = stackalloc void*[] { &rPtr, &xPtr, &wPtr, &outPtr, &hidden, &eps };
        Launch(_addRmsNorm, (rows, 1, 1), NormThreads(hidden), 0, args);
    }

    /// RMSNorm over each query head and key head of qkv (numTokens, (H + 2G) D), in place: by qWeight and kWeight (D)
    /// that every head shares, or (H, D) and (G, D), a weight per head.
    public void HeadRmsNorm(Tensor qkv, Tensor qWeight, Tensor kWeight, float eps)
    {
        var (rows, stride, heads, kvHeads) = ((uint)qkv.size(0), (int)qkv.stride(0), Shape.NumHeads, Shape.NumKVHeads);
        var (qkvPtr, qPtr, kPtr) = (TensorPointer.Of(qkv), TensorPointer.Of(qWeight), TensorPointer.Of(kWeight));
        var weightHeadStride = HeadNormStride(qWeight);
        void** args = stackalloc void*[] { &qkvPtr, &stride, &heads, &kvHeads, &qPtr, &kPtr, &weightHeadStride, &eps };
        Launch(_headRmsNorm, (rows, 1, 1), 32 * (uint)Math.Min(8, heads + kvHeads), 0, args);
    }

    // a head norm's weight (D) that every head shares: 0; a weight a head, (heads, D): D
    int HeadNormStride(Tensor weight) => weight.dim() == 2 ? Shape.HeadDim : 0;

    /// Rotates q and k of <paramref name="qkv"/> (numTokens, (numHeads + 2 numKVHeads) headDim) in place and
    /// writes rotated k and v into the pool at <paramref name="slots"/> (null: rotation only). positions, slots
    /// (numTokens) int32; cos, sin (maxPositions, rotaryDim / 2) float32; scales: the layer's [k_scale, v_scale]
    /// float32; kCache, vCache (numBlocks, blockSize, numKVHeads, headDim) of the pool's type. headNorm: q and k normed
    /// first as HeadRmsNorm norms them (the same values), in the same launch; null: no norm.
    public void RopeAndWriteKV(Tensor qkv, Tensor positions, Tensor? slots, Tensor cos, Tensor sin, Tensor scales, Tensor kCache, Tensor vCache,
        HeadNorm? headNorm = null)
    {
        var (rows, stride) = ((uint)qkv.size(0), (int)qkv.stride(0));
        var (heads, kvHeads) = (Shape.NumHeads, Shape.NumKVHeads);
        var (qkvPtr, posPtr, slotPtr) = (TensorPointer.Of(qkv), TensorPointer.Of(positions), slots is null ? IntPtr.Zero : TensorPointer.Of(slots));
        var (cosPtr, sinPtr, scalePtr) = (TensorPointer.Of(cos), TensorPointer.Of(sin), TensorPointer.Of(scales));
        var (kPtr, vPtr) = (TensorPointer.Of(kCache), TensorPointer.Of(vCache));
        var (qNormPtr, kNormPtr, normStride, normEps) = headNorm is { } norm
            ? (TensorPointer.Of(norm.Query), TensorPointer.Of(norm.Key), HeadNormStride(norm.Query), norm.Eps)
            : (IntPtr.Zero, IntPtr.Zero, 0, 0f);
        void** args = stackalloc void*[] { &qkvPtr, &stride, &heads, &kvHeads, &posPtr, &slotPtr, &cosPtr, &sinPtr, &scalePtr, &kPtr, &vPtr,
            &qNormPtr, &kNormPtr, &normStride, &normEps };
        // a block a token and KV head: the head's group of query heads and its k head, a thread a rotated pair
        Launch(_ropeKVWrite, (rows, (uint)kvHeads, 1), WholeWarps((heads / kvHeads + 1) * Shape.RotaryDim / 2), 0, args);
    }

    /// Writes k and v of already rotated <paramref name="qkv"/> rows into the pool at <paramref name="slots"/>,
    /// stored = value / scale. Arguments as RopeAndWriteKV.
    public void WriteKV(Tensor qkv, Tensor slots, Tensor scales, Tensor kCache, Tensor vCache)
    {
        var (rows, stride) = ((uint)qkv.size(0), (int)qkv.stride(0));
        var (heads, kvHeads) = (Shape.NumHeads, Shape.NumKVHeads);
        var (qkvPtr, slotPtr, scalePtr) = (TensorPointer.Of(qkv), TensorPointer.Of(slots), TensorPointer.Of(scales));
        var (kPtr, vPtr) = (TensorPointer.Of(kCache), TensorPointer.Of(vCache));
        void** args = stackalloc void*[] { &qkvPtr, &stride, &heads, &kvHeads, &slotPtr, &scalePtr, &kPtr, &vPtr };
        Launch(_kvWrite, (rows, 1, 1), WholeWarps(kvHeads * Shape.HeadDim), 0, args);
    }

    /// output[i] = pool[slots[i]] * scale in the model's type: pool (numBlocks, blockSize, numKVHeads, headDim) of the
    /// pool's type; slots (n) int32; scale one float32; output (n, numKVHeads, headDim).
    public void GatherKV(Tensor pool, Tensor slots, Tensor scale, Tensor output)
    {
        var kvHeads = Shape.NumKVHeads;
        var (poolPtr, slotPtr, scalePtr, outPtr) = (TensorPointer.Of(pool), TensorPointer.Of(slots), TensorPointer.Of(scale), TensorPointer.Of(output));
        void** args = stackalloc void*[] { &poolPtr, &slotPtr, &kvHeads, &scalePtr, &outPtr };
        Launch(_gatherKV, ((uint)slots.size(0), 1, 1), 128, 0, args);
    }

    /// output = SiLU(gate) * up. gateUp (numTokens, 2 ffn) = [gate | up]; output (numTokens, ffn).
    public void SiluMul(Tensor gateUp, Tensor output)
    {
        var ffn = (int)output.size(1);
        var totalVectors = output.size(0) * ffn / _vector;
        var (inPtr, outPtr) = (TensorPointer.Of(gateUp), TensorPointer.Of(output));
        void** args = stackalloc void*[] { &inPtr, &outPtr, &ffn, &totalVectors };
        var blocks = (uint)Math.Clamp((totalVectors + 255) / 256, 1, Device.MultiprocessorCount * 16);
        Launch(_siluMul, (blocks, 1, 1), 256, 0, args);
    }

    /// gpt-oss's experts' activation (decoder_kernels.cu's clamped_glu): gateUp (rows, 2 ffn), gate and up interleaved;
    /// bias (experts, 2 ffn), each row's expert's added first; expertOfRow (rows) int64; output (rows, ffn).
    public void ClampedGlu(Tensor gateUp, Tensor bias, Tensor expertOfRow, double limit, Tensor output)
    {
        var ffn = (int)output.size(1);
        var total = output.size(0) * ffn;
        var clamp = (float)limit;
        var (inPtr, biasPtr, expertPtr, outPtr) = (TensorPointer.Of(gateUp), TensorPointer.Of(bias), TensorPointer.Of(expertOfRow), TensorPointer.Of(output));
        void** args = stackalloc void*[] { &inPtr, &biasPtr, &expertPtr, &outPtr, &ffn, &total, &clamp };
        var blocks = (uint)Math.Clamp((total + 255) / 256, 1, Device.MultiprocessorCount * 16);
        Launch(_clampedGlu, (blocks, 1, 1), 256, 0, args);
    }

    public void Dispose()
    {
        _routerArrivals.Dispose();
        _module.Dispose();
    }

    // a grid of no blocks has nothing to do (a step whose chunk needs no logits runs the final norm over no rows): the
    // driver refuses such a launch, so it is skipped
    void Launch(IntPtr function, (uint X, uint Y, uint Z) grid, uint block, uint sharedBytes, void** args)
    {
        if (grid.X == 0 || grid.Y == 0 || grid.Z == 0) return;
        CudaDriver.Launch(function, grid, block, sharedBytes, _stream, args, DependentLaunch);
    }

    IntPtr Fn(string name) => _module.GetFunction(name);

    // One thread per 16-byte vector of the row.
    uint NormThreads(int hidden) => WholeWarps(hidden / _vector);

    // A block's threads for `work` independent items of one row: one each, in whole warps, at most 1024.
    static uint WholeWarps(int work) => (uint)Math.Clamp((work + 31) / 32 * 32, 32, 1024);

    static bool IsElementType(ScalarType dtype) => dtype is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16;

    static int ElementSize(ScalarType dtype) => dtype == ScalarType.Float32 ? 4 : 2;

    // the ELEM_TYPE / CACHE_TYPE codes of decoder_kernels.cu
    static int TypeCode(ScalarType dtype) => dtype switch
    {
        ScalarType.BFloat16 => 1,
        ScalarType.Float16 => 2,
        _ => 0,
    };

    static int TypeCode(KVCacheDtype dtype) => dtype.IsFp8 ? 3 : TypeCode(dtype.Storage);
}
