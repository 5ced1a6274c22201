using Serving.Engine.Config;
using Serving.Engine.KVCache;
using static System.FormattableString;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// What the kernels are compiled for: the model's element type, the KV pool's, the attention shape, and the
/// family's norms and rotary pairs.
internal sealed record KernelShape(ScalarType Dtype, KVCacheDtype CacheDtype, int HeadDim, int RotaryDim, int NumHeads, int NumKVHeads)
{
    /// The shape of a model's kernels in this element type over a pool of that type.
    public static KernelShape Of(ModelConfig config, ScalarType dtype, KVCacheDtype cacheDtype) =>
        new(dtype, cacheDtype, config.HeadDim, config.RotaryDim, config.NumAttentionHeads, config.NumKeyValueHeads)
        {
            NormWeight = config.NormWeight, NormsCentered = config.NormsCentered, InterleavedRope = config.InterleavedRope,
            RotaryPrecision = config.RotaryPrecision, AttentionSoftcap = config.AttentionSoftcap ?? 0,
        };

    /// How the norms' weights scale the normalisation (ModelConfig.NormWeight).
    public RmsNormWeight NormWeight { get; init; }
    /// Norms about the row's mean (ModelConfig.NormsCentered: cohere's LayerNorm).
    public bool NormsCentered { get; init; }
    /// Rotary embedding in interleaved pairs (ModelConfig.InterleavedRope).
    public bool InterleavedRope { get; init; }
    /// Attention soft-capping, cap x tanh(score / cap) on the scaled scores (ModelConfig.AttentionSoftcap: gemma2's);
    /// 0: none.
    public double AttentionSoftcap { get; init; }
    /// Where rotary embedding rounds (ModelConfig.RotaryPrecision).
    public RotaryPrecision RotaryPrecision { get; init; }

    public int GroupSize => NumHeads / NumKVHeads;

    /// Bytes one asynchronous copy of the attention kernel moves: 16, or a whole head row when shorter.
    public int CacheVectorBytes => Math.Min(16, HeadDim * CacheDtype.Size);

    /// Whether decode attention runs on tensor cores (paged_attention_mma.cu): a 16-bit model over a 16-bit or FP8
    /// pool, head dim a multiple of 16 (32 for FP8) and at most 128 (registers), on sm_80 or later; or head dim 256
    /// (gemma's) with at most 8 query heads per KV head (the layout with tokens as MMA rows, 156 registers) on sm_90,
    /// whose 227 KB of shared memory per block hold its four streams' stages (198 KB). Otherwise the CUDA-core kernel
    /// (paged_attention.cu) runs it: float32 models and pools, other head dims.
    public bool UsesTensorCoreAttention(int computeCapability) =>
        Dtype != ScalarType.Float32 && CacheDtype.Storage != ScalarType.Float32 && HeadDim % (CacheDtype.IsFp8 ? 32 : 16) == 0
        && (HeadDim <= 128 && computeCapability >= 80 || HeadDim == 256 && GroupSize <= 8 && computeCapability >= 90);
}

/// RMSNorm weights of each query head and key head ((D) that every head shares, or a weight a head) and their epsilon:
/// qwen3's q_norm and k_norm, which rope_kv_write can apply before its rotation.
internal readonly record struct HeadNorm(Tensor Query, Tensor Key, float Eps);

/// The decoder's fused CUDA kernels for one model shape, compiled with NVRTC when created and launched on one
/// stream (the engine's; TorchSharp's ops of the step run on it too, so they order without synchronization).
/// Tensors are passed by device pointer: callers keep them alive until the step's work has run (the TorchSharp
/// caching allocator only reuses memory in stream order, so a tensor disposed after its last launch is safe).
internal sealed unsafe class FusedKernels : IDisposable
{
    // paged_prefill_attention_mma: MMA_WARPS (4) warps of 16 query rows each
    const int PrefillThreads = 128, PrefillRowsPerBlock = 64;
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

    /// Whether ExpertsLinear takes a mixture's experts of this type and shape (rows and columns of one expert's weight):
    /// 16-bit, rows a multiple of 16 and columns of 8 (expert_linear.cu).
    public static bool TakesExperts(ScalarType dtype, long rows, long columns) =>
        dtype is ScalarType.BFloat16 or ScalarType.Float16 && rows % 16 == 0 && columns % 8 == 0;

    /// The rows of x ExpertsLinear multiplies in one pass over an expert's weight (expert_linear.cu's EXPERT_ROWS).
    public const int ExpertRowsAPass = 32;

    /// Each expert's rows of x times its weight transposed, in one launch that reads where the groups start on the
    /// device: x (slots, columns) contiguous, its rows grouped by expert; or, with xRows (slots) int64, x the tokens' rows
    /// (numTokens, columns), grouped row r being x's row xRows[r] (ExpertGroups.Tokens: the kernel gathers the routed
    /// rows itself); weight (experts x rows, columns), expert e's rows at e x rows; starts (experts + 1) int64, expert
    /// e's rows of x being starts[e] .. starts[e + 1]; active (experts) int64, the experts with rows first
    /// (ExpertGroups.Active: blocks for min(experts, slots) of them); output (slots, rows). TakesExperts must hold.
    /// Steps of few rows an expert keep more loads in flight: fewer slots than experts (an expert's rows mostly one: a
    /// decode step of few tokens) run expert_linear_sparse (8 rows a pass), at most 8 slots an expert on average
    /// expert_linear_few (16), more expert_linear (32). glu: the rows are gates and ups, and output (slots, rows / 2)
    /// takes the activation in their place (the bits of the product, then SiluMul or ClampedGlu).
    public void ExpertsLinear(Tensor x, Tensor? xRows, Tensor weight, Tensor starts, Tensor active, Tensor output, GluActivation? glu = null)
    {
        var (rows, columns) = ((int)output.size(1) * (glu is null ? 1 : 2), (int)x.size(1));
        var (xPtr, xRowsPtr, wPtr, startsPtr, activePtr, outPtr) = (TensorPointer.Of(x), xRows is null ? IntPtr.Zero : TensorPointer.Of(xRows),
            TensorPointer.Of(weight), TensorPointer.Of(starts), TensorPointer.Of(active), TensorPointer.Of(output));
        var (biasPtr, limit) = glu is GluActivation.Clamped clamped ? (TensorPointer.Of(clamped.Bias), (float)clamped.Limit) : (IntPtr.Zero, 0f);
        void** args = stackalloc void*[] { &xPtr, &xRowsPtr, &wPtr, &startsPtr, &activePtr, &outPtr, &rows, &columns, &biasPtr, &limit };
        var (slots, experts) = (output.size(0), active.size(0));
        var kernels = glu switch
        {
            null => _expertLinear,
            GluActivation.SiluAndMul => _expertLinearSilu,
            GluActivation.Clamped => _expertLinearClamped,
            _ => throw new ArgumentException($"no expert_linear epilogue for {glu}", nameof(glu)),
        };
        var kernel = slots < experts ? kernels.Sparse : slots <= 8 * experts ? kernels.Few : kernels.Many;
        Launch(kernel, ((uint)rows / 16, ExpertBlockRows(slots, experts), 1), 128, 0, args);
    }

    /// The rows of blocks of an expert product's grid (expert_linear.cu, fp8_few_rows.cu's experts_few_rows): one an
    /// expert that may have rows, at most one a slot.
    public static uint ExpertBlockRows(long slots, long experts) => (uint)Math.Min(slots, experts);

    /// Whether ChooseExperts takes a mixture of this many experts and picks a token (expert_routing.cu: a warp's
    /// registers).
    public static bool TakesChoice(long experts, long topK) => topK >= 1 && topK <= MaxRoutingPicks && topK <= experts && experts <= 1024;

    /// Whether GroupExperts takes a step of these slots (tokens x picks) as well (one block's shared memory).
    public static bool TakesGrouping(long experts, long topK, long slots) => TakesChoice(experts, topK) && slots <= MaxRoutingSlots;

    /// Whether RouteExperts takes a step of this many tokens (a warp of its block a token) as GroupExperts would.
    public static bool TakesRouting(long tokens, long experts, long topK) =>
        tokens >= 1 && tokens <= RouteTokens && TakesGrouping(experts, topK, tokens * topK);

    /// Whether RouteExperts computes a router's product of hidden features as well (TakesRouting; rows of whole
    /// 16-byte vectors).
    public bool TakesRouterProduct(long tokens, long experts, long topK, long hidden) =>
        TakesRouting(tokens, experts, topK) && hidden % _vector == 0;

    const int MaxRoutingPicks = 32, MaxRoutingSlots = 8192, RouteThreads = 256;

    // the most tokens expert_route takes, a warp of its block each (expert_routing.cu's ROUTE_TOKENS)
    const int RouteTokens = RouteThreads / 32;

    // the logits a lane of a token's warp holds in each compiled choice (expert_routing.cu's PER_LANE): experts of at
    // most 32, 64, 128, ..., 1024; a token's warp runs alone, so each entry point holds the loops of its count and no more
    static readonly int[] LogitsALane = [1, 2, 4, 8, 16, 32];

    /// expert_choice's entry points, by the logits a lane holds (LogitsALane).
    public static readonly string[] ExpertChoiceKernels = [.. LogitsALane.Select(n => $"expert_choice_{n}")];

    /// expert_route's entry points, the same way.
    public static readonly string[] ExpertRouteKernels = [.. LogitsALane.Select(n => $"expert_route_{n}")];

    // the entry point of these (ExpertChoiceKernels' order) for this many experts (TakesChoice: at most 1024)
    static IntPtr ForExperts(IntPtr[] entryPoints, int experts) =>
        entryPoints[System.Numerics.BitOperations.Log2(System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, (experts + 31) / 32)))];

    /// Each token's top-k experts and their weights (expert_choice_N; DecoderStep.ChooseExperts says what): logits
    /// (tokens, experts) contiguous, float32 or the model's type; choiceBias (experts) float32 or null; chosen (tokens, k)
    /// int64 and weights (tokens, k) of the model's type written. TakesChoice must hold.
    public void ChooseExperts(Tensor logits, Tensor? choiceBias, bool softmaxFirst, bool normalize, Tensor chosen, Tensor weights)
    {
        var (tokens, experts, k) = ((int)logits.size(0), (int)logits.size(1), (int)chosen.size(1));
        var (logitsF32, first, scaled) = (logits.dtype == ScalarType.Float32 ? 1 : 0, softmaxFirst ? 1 : 0, normalize ? 1 : 0);
        var (logitsPtr, biasPtr, chosenPtr, weightsPtr) = (TensorPointer.Of(logits), choiceBias is null ? IntPtr.Zero : TensorPointer.Of(choiceBias),
            TensorPointer.Of(chosen), TensorPointer.Of(weights));
        void** args = stackalloc void*[] { &logitsPtr, &logitsF32, &biasPtr, &chosenPtr, &weightsPtr, &tokens, &experts, &k, &first, &scaled };
        Launch(ForExperts(_expertChoice, experts), ((uint)(tokens + 3) / 4, 1, 1), 128, 0, args);   // a warp a token
    }

    /// A step's slots grouped by expert in one block (expert_groups; ExpertGroups says how they lie): chosen (tokens,
    /// k) int64 and weights (tokens, k) in; weightsSorted (tokens, k), rowOfSlot (tokens x k), tokensOfRow and
    /// expertOfRow (slots) int64, starts (experts + 1) and active (experts) int64 written. TakesGrouping must hold.
    public void GroupExperts(Tensor chosen, Tensor weights, int experts, Tensor weightsSorted, Tensor rowOfSlot, Tensor tokensOfRow,
        Tensor expertOfRow, Tensor starts, Tensor active)
    {
        var (tokens, k) = ((int)chosen.size(0), (int)chosen.size(1));
        var (chosenPtr, weightsPtr, sortedPtr, rowPtr, tokensPtr, expertPtr, startsPtr, activePtr) = (TensorPointer.Of(chosen), TensorPointer.Of(weights),
            TensorPointer.Of(weightsSorted), TensorPointer.Of(rowOfSlot), TensorPointer.Of(tokensOfRow), TensorPointer.Of(expertOfRow), TensorPointer.Of(starts),
            TensorPointer.Of(active));
        void** args = stackalloc void*[] { &chosenPtr, &weightsPtr, &sortedPtr, &rowPtr, &tokensPtr, &expertPtr, &startsPtr, &activePtr, &tokens, &k, &experts };
        Launch(_expertGroups, (1, 1, 1), 1024, GroupingSharedBytes(tokens, k, experts), args);
    }

    /// ChooseExperts then GroupExperts in one launch (expert_route_N): their arguments, chosen and weights written as
    /// ChooseExperts writes them (the grouping reads them back). TakesRouting must hold. With a router's product, the
    /// launch computes logits (the model's type) from it first (a block an expert, the last block to finish
    /// routing); TakesRouterProduct must hold.
    public void RouteExperts(Tensor logits, Tensor? choiceBias, bool softmaxFirst, bool normalize, Tensor chosen, Tensor weights,
        Tensor weightsSorted, Tensor rowOfSlot, Tensor tokensOfRow, Tensor expertOfRow, Tensor starts, Tensor active,
        RouterProduct? product = null)
    {
        var (tokens, experts, k) = ((int)logits.size(0), (int)logits.size(1), (int)chosen.size(1));
        var (logitsF32, first, scaled) = (logits.dtype == ScalarType.Float32 ? 1 : 0, softmaxFirst ? 1 : 0, normalize ? 1 : 0);
        var (logitsPtr, biasPtr, chosenPtr, weightsPtr) = (TensorPointer.Of(logits), choiceBias is null ? IntPtr.Zero : TensorPointer.Of(choiceBias),
            TensorPointer.Of(chosen), TensorPointer.Of(weights));
        var (sortedPtr, rowPtr, tokensPtr, expertPtr, startsPtr, activePtr) = (TensorPointer.Of(weightsSorted), TensorPointer.Of(rowOfSlot),
            TensorPointer.Of(tokensOfRow), TensorPointer.Of(expertOfRow), TensorPointer.Of(starts), TensorPointer.Of(active));
        var (xPtr, routerPtr, routerBiasPtr, hidden, arrivalsPtr) = product is { } p
            ? (TensorPointer.Of(p.Input), TensorPointer.Of(p.Weight), p.Bias is null ? IntPtr.Zero : TensorPointer.Of(p.Bias), (int)p.Weight.size(1),
                TensorPointer.Of(_routerArrivals))
            : (IntPtr.Zero, IntPtr.Zero, IntPtr.Zero, 0, IntPtr.Zero);
        void** args = stackalloc void*[] { &logitsPtr, &logitsF32, &biasPtr, &chosenPtr, &weightsPtr, &tokens, &experts, &k, &first, &scaled,
            &sortedPtr, &rowPtr, &tokensPtr, &expertPtr, &startsPtr, &activePtr, &xPtr, &routerPtr, &routerBiasPtr, &hidden, &arrivalsPtr };
        // with the product, a block an expert
        var grid = product is null ? (1u, 1u, 1u) : ((uint)experts, 1u, 1u);
        Launch(ForExperts(_expertRoute, experts), grid, RouteThreads, RouteSharedBytes(experts), args);
    }

    // expert_route's shared memory: each expert's takers, then its rows' start
    static uint RouteSharedBytes(int experts) => (uint)((2 * experts + 1) * sizeof(int));

    // expert_groups' shared memory: each slot's expert, then the experts' counts and starts
    static uint GroupingSharedBytes(int tokens, int k, int experts) => (uint)((tokens * k + experts + 1) * sizeof(int));

    /// Each token's experts' outputs weighed and summed (expert_combine; ExpertGroups.Combine says how): grouped (slots,
    /// hidden) contiguous; rowOfSlot, weightsSorted, expertOfRow as GroupExperts wrote them; bias (experts, hidden) added
    /// to each grouped row first, or null; output (tokens, hidden) written.
    public void CombineExperts(Tensor grouped, Tensor rowOfSlot, Tensor weightsSorted, Tensor? bias, Tensor expertOfRow, Tensor output)
    {
        var (hidden, k) = ((int)output.size(1), (int)weightsSorted.size(1));
        var total = output.size(0) * hidden;
        var (groupedPtr, rowPtr, weightsPtr, biasPtr, expertPtr, outPtr) = (TensorPointer.Of(grouped), TensorPointer.Of(rowOfSlot),
            TensorPointer.Of(weightsSorted), bias is null ? IntPtr.Zero : TensorPointer.Of(bias), TensorPointer.Of(expertOfRow), TensorPointer.Of(output));
        void** args = stackalloc void*[] { &groupedPtr, &rowPtr, &weightsPtr, &biasPtr, &expertPtr, &outPtr, &hidden, &k, &total };
        var blocks = (uint)Math.Clamp((total + 255) / 256, 1, Device.MultiprocessorCount * 16);
        Launch(_expertCombine, (blocks, 1, 1), 256, 0, args);
    }

    /// The split of a decode step's attention for this device; one plan serves every layer of the step.
    /// concurrentBlocks overrides the blocks the device runs at once (tests steer the split with it).
    public DecodeAttentionPlan PlanDecode(int numDecodes, int maxContextLength, int? concurrentBlocks = null) =>
        _attentionKernel.TensorCores
            ? DecodeAttentionPlan.Create(numDecodes, maxContextLength, AttentionBlocksPerSeq,
                concurrentBlocks ?? _concurrentAttentionBlocks, _attentionKernel.Granule,
                DecodeAttentionPlan.MinPartitionTokensFor(Shape.GroupSize, Shape.CacheDtype.Size), AttentionSpan)
            : DecodeAttentionPlan.CreateLatencyBound(numDecodes, maxContextLength, AttentionBlocksPerSeq,
                concurrentBlocks ?? _concurrentAttentionBlocks, _attentionKernel.Granule, AttentionSpan);

    /// The split a CUDA graph of decode batches of smallestBatch to largestBatch sequences captures, up to
    /// maxContextLength: a grid with room for the partitions of any eager step of those batches (DecodeGraphs replays
    /// with the eager step's partition size, so a replay sums in the eager order).
    public DecodeAttentionPlan PlanDecodeGraph(int smallestBatch, int largestBatch, int maxContextLength) =>
        _attentionKernel.TensorCores
            ? PlanDecode(smallestBatch, maxContextLength) with { NumSeqs = largestBatch }
            : DecodeAttentionPlan.LatencyBoundGraph(smallestBatch, largestBatch, maxContextLength,
                AttentionBlocksPerSeq, _concurrentAttentionBlocks, _attentionKernel.Granule, AttentionSpan);

    // thread blocks of decode attention per sequence and partition
    int AttentionBlocksPerSeq => Shape.NumKVHeads * _attentionKernel.BlocksPerKVHead;

    /// Whether decode attention runs on tensor cores here (see KernelShape.UsesTensorCoreAttention).
    public bool TensorCoreAttention => _attentionKernel.TensorCores;

    /// Attention of the step's decode sequences (one query token each) over their paged contexts.
    /// query (numTokens, numHeads * headDim), rows may be strided (the q part of a fused QKV output); decodeSeqs
    /// (numDecodes) the decoding sequences' indices; tokenRows (numSeqs) the row of each sequence's last token;
    /// blockTables (numSeqs, maxBlocksPerSeq) and contextLengths (numSeqs) int32; partitionSize one int32 on the
    /// device (the tokens of one partition, see DecodeAttentionPlan.PartitionSizeFor); kvScales the layer's
    /// [k_scale, v_scale] float32; output (numTokens, numHeads * headDim), only the decode rows written; workspace
    /// float32 of plan.WorkspaceElements (or empty). The plan gives the grid: NumSeqs x NumPartitions. window: a
    /// sliding-window layer's (each query sees the last window positions of its context); null: the whole context.
    /// sinks: a logit per query head (numHeads, of the model's type) that joins each softmax as a key without a value
    /// (gpt-oss's); null: none.
    public void PagedDecodeAttention(Tensor query, Tensor kCache, Tensor vCache, Tensor decodeSeqs, Tensor tokenRows,
        Tensor blockTables, Tensor contextLengths, Tensor partitionSize, Tensor kvScales, DecodeAttentionPlan plan, Tensor output,
        Tensor workspace, int? window = null, Tensor? sinks = null)
    {
        if (window is not null && (window <= 0 || plan.AttentionSpan is { } span && window > span))
            throw new ArgumentOutOfRangeException(nameof(window), window, $"a window is positive and within the plan's span ({plan.AttentionSpan})");
        var windowSize = window ?? 0;
        var sinkPtr = SinksPointer(sinks);
        var (qStride, maxBlocks, blockSize) = ((int)query.stride(0), (int)blockTables.size(1), (int)kCache.size(1));
        var (partitionPtr, scale) = (TensorPointer.Of(partitionSize), AttentionScale);
        var (qPtr, kPtr, vPtr) = (TensorPointer.Of(query), TensorPointer.Of(kCache), TensorPointer.Of(vCache));
        var (seqPtr, rowPtr) = (TensorPointer.Of(decodeSeqs), TensorPointer.Of(tokenRows));
        var (tablePtr, lenPtr, outPtr) = (TensorPointer.Of(blockTables), TensorPointer.Of(contextLengths), TensorPointer.Of(output));
        var scalePtr = TensorPointer.Of(kvScales);
        var partOut = plan.NumPartitions > 1 ? TensorPointer.Of(workspace) : IntPtr.Zero;
        var partMl = partOut + (nint)((long)plan.NumSeqs * Shape.NumHeads * plan.NumPartitions * Shape.HeadDim * sizeof(float));
        void** args = stackalloc void*[]
        {
            &qPtr, &qStride, &kPtr, &vPtr, &seqPtr, &rowPtr, &tablePtr, &maxBlocks, &lenPtr, &blockSize, &partitionPtr, &scale,
            &windowSize, &scalePtr, &outPtr, &partOut, &partMl, &sinkPtr,
        };
        var grid = ((uint)AttentionBlocksPerSeq, (uint)plan.NumSeqs, (uint)plan.NumPartitions);
        Launch(_attention, grid, _attentionKernel.Threads, _attentionKernel.SharedBytes, args);
        if (plan.NumPartitions > 1)
        {
            var partitions = plan.NumPartitions;
            // the CUDA-core kernel counts the sinks in its partition 0, the tensor-core one leaves them to the reduce
            var reduceSinkPtr = _attentionKernel.TensorCores ? sinkPtr : IntPtr.Zero;
            void** reduceArgs = stackalloc void*[] { &partOut, &partMl, &seqPtr, &rowPtr, &lenPtr, &partitionPtr, &windowSize, &partitions, &outPtr, &reduceSinkPtr };
            Launch(_attentionReduce, ((uint)Shape.NumHeads, (uint)plan.NumSeqs, 1), (uint)Shape.HeadDim,
                (uint)(partitions * 2 * sizeof(float)), reduceArgs);
        }
    }

    /// Causal attention of the step's prefill sequences (several new tokens each) over their paged contexts, on tensor
    /// cores (only where TensorCoreAttention). query as PagedDecodeAttention; prefills (numPrefills, 3) int32: each
    /// sequence's index, first row in query / output, and query length (its queries are the last query-length positions
    /// of its context, whose K/V are already in the pool); maxQueryLength the longest of them; blockTables,
    /// contextLengths, kvScales and output as PagedDecodeAttention (only the prefill rows written); window as
    /// PagedDecodeAttention's; sinks as PagedDecodeAttention's.
    public void PagedPrefillAttention(Tensor query, Tensor kCache, Tensor vCache, Tensor prefills, int maxQueryLength,
        Tensor blockTables, Tensor contextLengths, Tensor kvScales, Tensor output, int? window = null, Tensor? sinks = null)
    {
        if (!_attentionKernel.TensorCores) throw new InvalidOperationException("prefill attention kernel needs tensor-core attention");
        if (window is <= 0) throw new ArgumentOutOfRangeException(nameof(window), window, "a window is positive");
        var windowSize = window ?? 0;
        var (qStride, maxBlocks, blockSize, scale) = ((int)query.stride(0), (int)blockTables.size(1), (int)kCache.size(1), AttentionScale);
        var (qPtr, kPtr, vPtr, prefillPtr) = (TensorPointer.Of(query), TensorPointer.Of(kCache), TensorPointer.Of(vCache), TensorPointer.Of(prefills));
        var (tablePtr, lenPtr, scalePtr, outPtr) = (TensorPointer.Of(blockTables), TensorPointer.Of(contextLengths), TensorPointer.Of(kvScales), TensorPointer.Of(output));
        var sinkPtr = SinksPointer(sinks);
        void** args = stackalloc void*[]
        {
            &qPtr, &qStride, &kPtr, &vPtr, &prefillPtr, &tablePtr, &maxBlocks, &lenPtr, &blockSize, &scale, &windowSize, &scalePtr, &outPtr, &sinkPtr,
        };
        var rowTiles = ((long)maxQueryLength * Shape.GroupSize + PrefillRowsPerBlock - 1) / PrefillRowsPerBlock;
        var grid = ((uint)Shape.NumKVHeads, (uint)prefills.size(0), (uint)rowTiles);
        Launch(_prefillAttention, grid, PrefillThreads, DecodeAttentionKernel.ChunkStagesBytes(Shape), args);
    }

    public void Dispose()
    {
        _routerArrivals.Dispose();
        _module.Dispose();
    }

    // the kernels read one sink per query head in the model's type
    IntPtr SinksPointer(Tensor? sinks) =>
        sinks is null ? IntPtr.Zero
        : sinks.dtype == Shape.Dtype && sinks.numel() == Shape.NumHeads && sinks.is_contiguous() ? TensorPointer.Of(sinks)
        : throw new ArgumentException($"sinks are {Shape.NumHeads} contiguous values of {Shape.Dtype}, got {sinks.dtype} [{string.Join(", ", sinks.shape)}]", nameof(sinks));

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

/// expert_linear.cu's entry points of one epilogue (plain products, or a GluActivation), by the rows an expert:
/// expert_linear_sparse, _few, expert_linear, each with the epilogue's suffix.
internal readonly record struct ExpertLinearKernels(IntPtr Sparse, IntPtr Few, IntPtr Many)
{
    /// The epilogues' suffixes: plain products, silu(gate) x up (GluActivation.SiluAndMul), gpt-oss's clamped GLU
    /// (GluActivation.Clamped).
    public const string Plain = "", SiluAndMul = "_glu", ClampedGlu = "_clamped_glu";

    /// Every entry point's name, every epilogue's.
    public static IReadOnlyList<string> EntryPoints { get; } = [.. NamesOf(Plain), .. NamesOf(SiluAndMul), .. NamesOf(ClampedGlu)];

    public static ExpertLinearKernels Of(KernelModule module, string suffix)
    {
        var names = NamesOf(suffix);
        return new(module.GetFunction(names[0]), module.GetFunction(names[1]), module.GetFunction(names[2]));
    }

    // sparse, few, many
    static string[] NamesOf(string suffix) => [$"expert_linear_sparse{suffix}", $"expert_linear_few{suffix}", $"expert_linear{suffix}"];
}

/// An activation a mixture's gate and up product writes in place of its gates and ups (FusedKernels.ExpertsLinear's
/// glu; expert_linear.cu's GLU epilogues): the output has half the product's columns.
internal abstract record GluActivation
{
    /// silu(gate) x up, each expert's rows its gates' then its ups' (MoeMlp's gate_up), with SiluMul's bits.
    public sealed record SiluAndMul : GluActivation;

    /// gpt-oss's (ClampedGlu's bits): each expert's gate and up rows interleaved, the gate's first; Bias (experts, rows)
    /// of the model's type, contiguous, each expert's added first; Limit the model's swiglu_limit.
    public sealed record Clamped(Tensor Bias, double Limit) : GluActivation;
}

/// A router's product for RouteExperts to compute in its launch: Input (tokens, hidden), Weight (experts, hidden) and
/// Bias (experts) or null, of the model's type, contiguous; the logits Input Weight^T (+ Bias), rounded to the model's type.
internal readonly record struct RouterProduct(Tensor Input, Tensor Weight, Tensor? Bias = null);
