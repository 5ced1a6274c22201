using Serving.Engine.Config;
using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model.Backends;

/// The fused backend: the NVRTC-compiled kernels of ../../Cuda for norms, rotary + KV write, decode attention and
/// SiLU x up, launched on the model's own stream, where TorchSharp's matrix products and the prefill attention of
/// the step run too. Owns the compiled kernels and the step buffers (fixed addresses, so a decode step can be
/// captured as a CUDA graph); the stream and the rotary tables belong to the model.
internal sealed class CudaBackend : DecoderBackend
{
    readonly ModelConfig _config;
    readonly RopeTable _rope;
    readonly RopeTable? _localRope;

    /// localRope: the sliding-window layers' rotary table when they turn by another rope (gemma3); null: rope.
    public CudaBackend(ModelConfig config, KernelShape shape, RopeTable rope, RopeTable? localRope, Device device, CudaStream stream)
    {
        (_config, _rope, _localRope, Stream) = (config, rope, localRope, stream);
        Kernels = new FusedKernels(stream.Device, Stream.Handle, shape, (float)config.SoftmaxScale, config.AttentionSpan);
        Buffers = new DeviceStepBuffers(maxTokens: 256, maxSeqs: 16, maxBlocksPerSeq: 64, device);
    }

    /// Whether the kernels take this model and pool on the device: a decoder they compute (ModelConfig.FusedKernelsCompute)
    /// in a shape they take (FusedKernels.Supports), its norms' and SiLU's rows whole 16-byte vectors; attention sinks
    /// only on tensor cores (the other prefill path is SDPA's, which has none).
    public static bool Supports(ModelConfig config, KernelShape shape, Device device)
    {
        var computeCapability = CudaDevice.Open(Math.Max(device.index, 0)).ComputeCapability;
        return config.FusedKernelsCompute
            && config.HiddenSize % 8 == 0 && config.IntermediateSize % 8 == 0 && config.ExpertIntermediateSize % 8 == 0
            && config.SharedExpertIntermediateSize % 8 == 0
            && FusedKernels.Supports(shape, computeCapability)
            && (!config.AttentionSinks || shape.UsesTensorCoreAttention(computeCapability));
    }

    public CudaStream Stream { get; }
    public FusedKernels Kernels { get; }
    public DeviceStepBuffers Buffers { get; }
    /// When set, steps time each operation into it (the benchmark's --profile).
    public KernelProfile? Profile { get; set; }
    /// The decode batch sizes' matrix products as timed by TuneMatmuls; null before (TorchSharp's linear throughout).
    public MatmulTuning? Matmuls { get; private set; }

    /// Times the model's matrix products at these batch sizes (MatmulTuning) so that steps of at most the largest run
    /// the fastest algorithm of each; with no batch sizes, steps go back to TorchSharp's linear throughout. On the
    /// stream, outside any capture.
    public void TuneMatmuls(IEnumerable<Tensor> weights, IReadOnlyList<int> batchSizes)
    {
        Matmuls?.Dispose();
        Matmuls = null;
        if (batchSizes.Count == 0) return;
        Stream.MakeCurrent();
        Matmuls = new MatmulTuning(Stream.Handle, Buffers.Device);
        Matmuls.Tune(weights, batchSizes);
    }

    public override DecoderStep Begin(StepInputs inputs, PagedKVCache cache) => new CudaStep(this, _config, _rope, _localRope, inputs, cache);

    /// A decode step of fixed shape for capture: its attention grid is the plan's (NumPartitions), whatever the
    /// contexts of the steps that replay it.
    public CudaStep BeginCapture(StepInputs inputs, PagedKVCache cache, DecodeAttentionPlan plan) =>
        new(this, _config, _rope, _localRope, inputs, cache, plan);

    public override void Dispose()
    {
        Stream.Synchronize();
        Matmuls?.Dispose();
        Buffers.Dispose();
        Kernels.Dispose();
    }
}

/// One step of the fused backend. Its metadata lives in the backend's step buffers (uploaded here, one copy); it owns
/// the views and the attention workspace; intermediates belong to the caller's dispose scope and are released in
/// stream order.
internal sealed class CudaStep : DecoderStep
{
    /// The least KV scale --calculate-kv-scales sets (an all-zero layer would otherwise divide by zero).
    static readonly Scalar SmallestScale = 1e-8.ToScalar();

    readonly FusedKernels _kernels;
    readonly KernelProfile? _profile;
    readonly MatmulTuning? _matmuls;
    readonly ModelConfig _config;
    readonly RopeTable _rope;
    readonly RopeTable? _localRope;
    readonly PagedKVCache _cache;
    readonly StepInputs _inputs;
    readonly Tensor _positions, _slots, _tokenRows, _decodeSeqs, _contextLengths, _blockTables;
    readonly int[] _prefillSeqs;
    readonly Tensor? _contextSlots;        // (sum of prefill context lengths) int32, prefill sequences only (CUDA-core path)
    readonly Tensor? _prefills;            // (prefill sequences, 3) int32: index, first row, query length (tensor-core path)
    readonly int _maxPrefillLength;
    readonly DecodeAttentionPlan? _plan;
    readonly Tensor _partitionSize;        // (1) int32: tokens per attention partition this step
    readonly Tensor? _workspace;           // float32, plan.WorkspaceElements

    public CudaStep(CudaBackend backend, ModelConfig config, RopeTable rope, RopeTable? localRope, StepInputs inputs, PagedKVCache cache,
        DecodeAttentionPlan? fixedPlan = null)
        : base(backend.Communicator)
    {
        (_kernels, _config, _rope, _localRope, _cache, _inputs) = (backend.Kernels, config, rope, localRope, cache, inputs);
        (_profile, _matmuls) = (backend.Profile, backend.Matmuls);
        backend.Stream.MakeCurrent();
        using var scope = NewDisposeScope();
        var decodes = Enumerable.Range(0, inputs.NumSeqs).Where(s => inputs.QueryLength(s) == 1).ToArray();
        _prefillSeqs = Enumerable.Range(0, inputs.NumSeqs).Where(s => inputs.QueryLength(s) > 1).ToArray();
        var buffers = backend.Buffers;
        var maxDecodeContext = decodes.Length == 0 ? 1 : decodes.Max(d => inputs.ContextLengths[d]);
        if (decodes.Length > 0) _plan = fixedPlan ?? _kernels.PlanDecode(decodes.Length, maxDecodeContext);
        buffers.Upload(inputs, decodes, _plan?.PartitionSizeFor(maxDecodeContext) ?? 0);
        _partitionSize = buffers.PartitionSize;
        var (n, s) = (inputs.NumTokens, inputs.NumSeqs);
        (TokenIds, _positions, _slots) = (buffers.TokenIds(n), buffers.Positions(n), buffers.Slots(n));
        LogitRows = inputs.LogitRows.Length == n ? null : buffers.LogitRows(inputs.LogitRows.Length);
        (_tokenRows, _decodeSeqs) = (buffers.TokenRows(s), buffers.DecodeSeqs(decodes.Length));
        (_contextLengths, _blockTables) = (buffers.ContextLengths(s), buffers.BlockTables(s));
        if (_prefillSeqs.Length > 0 && _kernels.TensorCoreAttention)
        {
            var rows = _prefillSeqs.SelectMany(p => new[] { p, inputs.QueryStarts[p], inputs.QueryLength(p) }).ToArray();
            _prefills = tensor(rows, dtype: ScalarType.Int32, device: cache.Device).view(_prefillSeqs.Length, 3);
            _maxPrefillLength = _prefillSeqs.Max(inputs.QueryLength);
        }
        else if (_prefillSeqs.Length > 0)
            _contextSlots = tensor(PrefillAttention.ContextSlots(inputs, _prefillSeqs), dtype: ScalarType.Int32, device: cache.Device);
        if (_plan is not null)
            _workspace = empty(_plan.WorkspaceElements(config.NumAttentionHeads, config.HeadDim), ScalarType.Float32, cache.Device);
        Keep(scope);
    }

    public override Tensor TokenIds { get; }
    public override Tensor? LogitRows { get; }

    // a LayerNorm with a bias (starcoder2's; Nemotron's LayerNorm1P, whose weight is 1 + the stored one) is torch's
    // layer_norm as the plain backend computes it: the kernels have no bias
    public override Tensor RmsNorm(Tensor x, Tensor weight, double eps, Tensor? bias = null) => Timed("norms", () =>
    {
        if (bias is not null) return TorchOps.RmsNorm(x, weight, eps, _config.NormWeight, _config.NormsCentered, bias);
        var output = empty_like(x);
        _kernels.RmsNorm(x, weight, output, (float)eps);
        return output;
    });

    public override (Tensor Normed, Tensor Residual) AddRmsNorm(Tensor x, Tensor residual, Tensor weight, double eps, Tensor? bias = null) => Timed("norms", () =>
    {
        if (bias is not null) return TorchOps.AddRmsNorm(x, residual, weight, eps, _config.NormWeight, _config.NormsCentered, bias);
        var output = empty_like(x);
        _kernels.AddRmsNorm(residual, x, weight, output, (float)eps);
        return (output, residual);
    });

    public override Tensor HeadRmsNorm(Tensor qkv, Tensor qWeight, Tensor kWeight, double eps) => Timed("norms", () =>
    {
        // olmo2 norms all of q and all of k at once, wider than a head: TorchSharp's
        if (_config.QkNorm == QkNorm.WholeProjection)
            return TorchOps.HeadRmsNorm(qkv, qWeight, kWeight, eps, _config.NumAttentionHeads, _config.NumKeyValueHeads, _config.HeadDim,
                _config.NormWeight, _config.NormsCentered, wholeProjection: true);
        _kernels.HeadRmsNorm(qkv, qWeight, kWeight, (float)eps);
        return qkv;
    });

    public override Tensor RotaryAndCacheWrite(Tensor qkv, int layer) => Timed("rotary + KV write", () =>
    {
        if (RotatesAndWritesApart(layer))
            return Write(Rotate(qkv, layer), layer);
        RopeAndWriteKV(qkv, layer, headNorm: null);
        return qkv;
    });

    // the head norms' time counts as the rotary's in a --profile
    public override Tensor HeadRmsNormRotaryAndCacheWrite(Tensor qkv, Tensor qWeight, Tensor kWeight, double eps, int layer)
    {
        if (_config.QkNorm == QkNorm.WholeProjection || RotatesAndWritesApart(layer))
            return base.HeadRmsNormRotaryAndCacheWrite(qkv, qWeight, kWeight, eps, layer);
        return Timed("rotary + KV write", () =>
        {
            RopeAndWriteKV(qkv, layer, new HeadNorm(qWeight, kWeight, (float)eps));
            return qkv;
        });
    }

    // --calculate-kv-scales measures the rotated K and V before writing them; a layer without rotary embedding writes alone
    bool RotatesAndWritesApart(int layer) => _cache.CalibrateScales || _config.NoRopeLayers.Contains(layer);

    void RopeAndWriteKV(Tensor qkv, int layer, HeadNorm? headNorm)
    {
        var rope = RopeOf(layer);
        _kernels.RopeAndWriteKV(qkv, _positions, _slots, rope.Cos, rope.Sin, _cache.Scales[layer], _cache.Keys(layer), _cache.Values(layer), headNorm);
    }

    public override Tensor Rotary(Tensor qkv, int layer) => Timed("rotary + KV write", () => Rotate(qkv, layer));

    public override Tensor CacheWrite(Tensor qkv, int layer) => Timed("rotary + KV write", () => Write(qkv, layer));

    public override Tensor Attention(Tensor qkv, int layer, Tensor? sinks) => Timed("attention", () => Attend(qkv, layer, sinks));

    public override Tensor SiluAndMul(Tensor gateUp) => Timed("silu x up", () =>
    {
        var output = empty(gateUp.size(0), gateUp.size(1) / 2, gateUp.dtype, gateUp.device);
        _kernels.SiluMul(gateUp, output);
        return output;
    });

    public override Tensor ClampedGlu(Tensor gateUp, Tensor bias, Tensor expertOfRow, double limit) => Timed("silu x up", () =>
    {
        var output = empty(gateUp.size(0), gateUp.size(1) / 2, gateUp.dtype, gateUp.device);
        if (output.size(0) > 0) _kernels.ClampedGlu(gateUp, bias, expertOfRow, limit, output);
        return output;
    });

    public override (Tensor Chosen, Tensor Weights) ChooseExperts(Tensor logits, ExpertChoice choice, ScalarType dtype) => Timed("routing", () =>
    {
        var (tokens, experts) = (logits.size(0), logits.size(1));
        if (tokens == 0 || !KernelsChooseFrom(logits, dtype) || !FusedKernels.TakesChoice(experts, choice.TopK))
            return base.ChooseExperts(logits, choice, dtype);
        var chosen = empty(tokens, choice.TopK, ScalarType.Int64, logits.device);
        var weights = empty(tokens, choice.TopK, dtype, logits.device);
        _kernels.ChooseExperts(logits.contiguous(), choice.ChoiceBias?.contiguous(), choice.SoftmaxFirst, choice.Normalize, chosen, weights);
        return (chosen, weights);
    });

    public override ExpertGroups GroupExperts(Tensor chosen, Tensor weights, int experts) => Timed("routing", () =>
    {
        var (tokens, k) = (chosen.size(0), chosen.size(1));
        if (tokens == 0 || weights.dtype != _kernels.Shape.Dtype || !FusedKernels.TakesGrouping(experts, k, tokens * k))
            return base.GroupExperts(chosen, weights, experts);
        var g = GroupsToWrite(tokens, k, experts, weights.dtype, chosen.device);
        _kernels.GroupExperts(chosen.contiguous(), weights.contiguous(), experts, g.Weights, g.RowOfSlot, g.Tokens, g.ExpertOfRow, g.Starts, g.Active);
        return g;
    });

    public override ExpertGroups RouteExperts(Tensor logits, ExpertChoice choice, ScalarType dtype)
    {
        var (tokens, experts, k) = (logits.size(0), logits.size(1), choice.TopK);
        if (!KernelsChooseFrom(logits, dtype) || !FusedKernels.TakesRouting(tokens, experts, k))
            return base.RouteExperts(logits, choice, dtype);
        return RouteInOneLaunch(logits.contiguous(), choice, dtype, product: null);
    }

    public override ExpertGroups RouteTokens(Tensor x, Linear router, ExpertChoice choice, ScalarType dtype)
    {
        var (tokens, experts, k) = (x.size(0), router.OutFeatures, choice.TopK);
        if (!RoutesInTheProduct(x, router, dtype) || !_kernels.TakesRouterProduct(tokens, experts, k, router.InFeatures))
            return base.RouteTokens(x, router, choice, dtype);
        var logits = empty(tokens, experts, dtype, x.device);   // the launch writes them first
        return RouteInOneLaunch(logits, choice, dtype, new RouterProduct(x.contiguous(), router.Weight, router.Bias));
    }

    // FusedKernels.RouteExperts: the groups of logits (tokens, experts), or of the router's product written into them
    ExpertGroups RouteInOneLaunch(Tensor logits, ExpertChoice choice, ScalarType dtype, RouterProduct? product) => Timed("routing", () =>
    {
        var (tokens, experts, k, device) = (logits.size(0), logits.size(1), choice.TopK, logits.device);
        var (chosen, weights) = (empty(tokens, k, ScalarType.Int64, device), empty(tokens, k, dtype, device));
        var g = GroupsToWrite(tokens, k, (int)experts, dtype, device);
        _kernels.RouteExperts(logits, choice.ChoiceBias?.contiguous(), choice.SoftmaxFirst, choice.Normalize, chosen, weights,
            g.Weights, g.RowOfSlot, g.Tokens, g.ExpertOfRow, g.Starts, g.Active, product);
        return g;
    });

    // the routing kernel computes a router's product of the model's type (its bias too) without an FP8 weight or a LoRA update
    bool RoutesInTheProduct(Tensor x, Linear router, ScalarType dtype) =>
        dtype == _kernels.Shape.Dtype && x.dtype == dtype && router.Weight.dtype == dtype && (router.Bias is null || router.Bias.dtype == dtype)
        && router.Fp8 is null && (Lora is null || router.Target is null);

    // the routing kernels' weights are the model's type, their logits that type or float32
    bool KernelsChooseFrom(Tensor logits, ScalarType dtype) =>
        dtype == _kernels.Shape.Dtype && (logits.dtype == dtype || logits.dtype == ScalarType.Float32);

    // the tensors of a step's groups, for a kernel to write
    static ExpertGroups GroupsToWrite(long tokens, long k, int experts, ScalarType dtype, Device device) => new(
        tokens: empty(tokens * k, ScalarType.Int64, device), expertOfRow: empty(tokens * k, ScalarType.Int64, device),
        starts: empty(experts + 1, ScalarType.Int64, device), rowOfSlot: empty(tokens * k, ScalarType.Int64, device),
        weights: empty(tokens, k, dtype, device), active: empty(experts, ScalarType.Int64, device));

    public override Tensor CombineExperts(ExpertGroups groups, Tensor? grouped, Tensor x, Tensor? bias) => Timed("routing", () =>
    {
        if (grouped is null || grouped.dtype != _kernels.Shape.Dtype || groups.Weights.dtype != grouped.dtype || bias is not null && bias.dtype != grouped.dtype)
            return base.CombineExperts(groups, grouped, x, bias);
        var output = empty_like(x);
        _kernels.CombineExperts(grouped.contiguous(), groups.RowOfSlot, groups.Weights.contiguous(), bias?.contiguous(), groups.ExpertOfRow, output);
        return output;
    });

    /// A decode step's experts (whatever the batch: graphs capture it) and a step of at most a kernel's pass of rows an
    /// expert on average; more rows an expert (a long prompt's) run a library product a group.
    public override bool GroupsExpertsOnTheDevice(long slots, int experts, int rowsAPass) =>
        _prefillSeqs.Length == 0 || slots <= (long)rowsAPass * experts;

    public override void ExpertsLinear(Tensor x, Tensor weight, ExpertGroups groups, bool gather, Tensor output, GluActivation? glu = null) =>
        Timed("experts", () =>
        {
            _kernels.ExpertsLinear(x, TokenOfRows(groups, gather), weight, groups.Starts, groups.Active, output, glu);
            return output;
        });

    public override void ExpertsLinear(Tensor x, Fp8Experts experts, ExpertGroups groups, bool gather, Tensor output) =>
        Timed("experts", () =>
        {
            experts.Products.ExpertsLinear(x, TokenOfRows(groups, gather), experts, groups.Starts, groups.Active, output);
            return output;
        });

    // the expert kernels' x_rows: each grouped row's token where they read the tokens' rows (gather), else none
    static Tensor? TokenOfRows(ExpertGroups groups, bool gather) => gather ? groups.Tokens.contiguous() : null;

    public override Tensor Linear(Tensor x, Tensor weight, Tensor? bias) =>
        (bias is null ? _matmuls?.TryLinear(x, weight) : null) ?? base.Linear(x, weight, bias);

    T Timed<T>(string operation, Func<T> work) => _profile is null ? work() : _profile.Time(operation, work);

    RopeTable RopeOf(int layer) => _config.TurnsByLocalRope(layer) ? _localRope! : _rope;

    /// In place: the rotary kernel without its KV write.
    Tensor Rotate(Tensor qkv, int layer)
    {
        if (_config.NoRopeLayers.Contains(layer))   // smollm3's every fourth layer has no rotary embedding
            return qkv;
        var rope = RopeOf(layer);
        _kernels.RopeAndWriteKV(qkv, _positions, null, rope.Cos, rope.Sin, _cache.Scales[layer], _cache.Keys(layer), _cache.Values(layer));
        return qkv;
    }

    Tensor Write(Tensor qkv, int layer)
    {
        var (keys, values, scales) = (_cache.Keys(layer), _cache.Values(layer), _cache.Scales[layer]);
        if (_cache.CalibrateScales)
        {
            // --calculate-kv-scales: measure the (rotated) K and V, set this layer's scales, then write
            var (heads, kvHeads, dim) = (_config.NumAttentionHeads, _config.NumKeyValueHeads, _config.HeadDim);
            using var scope = NewDisposeScope();
            var k = qkv.narrow(1, heads * dim, kvHeads * dim).abs().max();
            var v = qkv.narrow(1, (heads + kvHeads) * dim, kvHeads * dim).abs().max();
            var amax = stack([k, v]).to_type(ScalarType.Float32);
            scales.copy_(clamp_min(HeldScalars.Divide(amax, _cache.Dtype.MaxMagnitude), SmallestScale));  // the largest value maps to the type's largest
        }
        _kernels.WriteKV(qkv, _slots, scales, keys, values);
        return qkv;
    }

    Tensor Attend(Tensor qkv, int layer, Tensor? sinks)
    {
        var (keys, values, window) = (_cache.Keys(layer), _cache.Values(layer), _config.LayerWindow(layer));
        var output = empty(_inputs.NumTokens, _config.QSize, qkv.dtype, qkv.device);
        if (_plan is not null)
        {
            // each decode sequence's query is the first QSize columns of its row of qkv (read at qkv's row stride)
            _kernels.PagedDecodeAttention(qkv, keys, values, _decodeSeqs, _tokenRows, _blockTables, _contextLengths,
                _partitionSize, _cache.Scales[layer], _plan, output, _workspace!, window, sinks);
        }
        if (_prefills is not null)
        {
            _kernels.PagedPrefillAttention(qkv, keys, values, _prefills, _maxPrefillLength, _blockTables, _contextLengths,
                _cache.Scales[layer], output, window, sinks);
        }
        if (_contextSlots is not null)
        {
            // SDPA has no sinks: such a model takes the fused backend only with tensor-core attention (Supports)
            if (sinks is not null) throw new NotSupportedException("attention sinks in a prefill need the tensor-core kernels");
            PrefillAttention.Run(_kernels, qkv, layer, _cache, _inputs, _prefillSeqs, _contextSlots, output, window);
        }
        return output;
    }
}
