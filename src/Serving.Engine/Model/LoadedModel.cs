using Serving.Engine.Architectures;
using Serving.Engine.Config;
using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model.Backends;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// A checkpoint ready to run: its configs, the decoder with weights on the target device, and the backends that
/// run its steps (made on first use: the fused CUDA kernels where they apply, else plain TorchSharp). Forward calls
/// must come from one thread (the engine thread); the caller's dispose scope owns the results.
public sealed class LoadedModel : IDisposable
{
    readonly CausalLM _model;
    readonly Dictionary<KVCacheDtype, CudaBackend> _fused = new();   // by KV cache dtype
    RopeTable? _rope;
    TorchBackend? _torch;
    DecodeGraphs? _graphs;

    internal LoadedModel(string directory, CausalLM model, GenerationConfig generation)
    {
        Directory = directory;
        _model = model;
        Generation = generation;
        MaxPositions = model.Config.MaxContextLength;
    }

    public string Directory { get; }
    public ModelConfig Config => _model.Config;
    public GenerationConfig Generation { get; }
    public ScalarType Dtype => _model.Dtype;
    public string DtypeName => ModelDtype.Name(Dtype);
    public Device Device => _model.Device;

    /// Positions the rotary table covers (the served max model length); set before the first step.
    public int MaxPositions { get; set; }

    /// Run steps through the fused CUDA kernels where they apply (default); false forces the plain TorchSharp path.
    public bool UseFusedKernels { get; set; } = true;

    /// Replay captured decode graphs where they apply (default); false runs every step eagerly.
    public bool UseCudaGraphs { get; set; } = true;

    /// The batch sizes of the captured decode graphs (empty before CaptureDecodeGraphs).
    public IReadOnlyList<int> CudaGraphBatchSizes => _graphs?.BatchSizes ?? [];

    /// Bytes of all weights on the device (the embedding table once more when the LM head is untied).
    public long WeightBytes => _model.parameters().Sum(p => p.NumberOfElements * p.ElementSize);

    /// Bytes a step of numTokens tokens must read from the weights: every matrix and norm once, the LM head once,
    /// and one embedding row per token (an untied embedding table is not read whole).
    public long StepWeightBytes(int numTokens)
    {
        var table = _model.EmbeddingTable;
        var rowBytes = table.size(1) * table.ElementSize;
        var untiedTable = Config.TieWordEmbeddings ? 0 : table.NumberOfElements * table.ElementSize;
        return WeightBytes - untiedTable + numTokens * rowBytes;
    }

    /// Per layer [k_scale, v_scale] of an FP8 KV cache, when the checkpoint carries them (self_attn.k_scale and
    /// v_scale, as vLLM reads them); null otherwise.
    public float[,]? CheckpointKVScales { get; init; }

    /// What a KV pool for this model holds per token, in cacheDtype (null: the model's dtype).
    public KVCacheSpec KVCacheSpec(KVCacheDtype? cacheDtype = null) => KVCache.KVCacheSpec.For(Config, cacheDtype ?? KVCacheDtype.Of(Dtype));

    /// A KV pool matching this model (layers, KV heads, head dim) on its device, in cacheDtype (null: the model's).
    /// An FP8 pool starts with the checkpoint's scales where it has them.
    public PagedKVCache CreateKVCache(int numBlocks, int blockSize, KVCacheDtype? cacheDtype = null)
    {
        var cache = new PagedKVCache(KVCacheSpec(cacheDtype), numBlocks, blockSize, Device);
        if (cache.Dtype.IsFp8 && CheckpointKVScales is { } scales) cache.SetScales(scales);
        return cache;
    }

    /// A KV pool in one of libtorch's float types.
    public PagedKVCache CreateKVCache(int numBlocks, int blockSize, ScalarType cacheDtype) =>
        CreateKVCache(numBlocks, blockSize, KVCacheDtype.Of(cacheDtype));

    /// Whether steps over a pool of cacheDtype run the fused CUDA kernels (CUDA, a supported dtype and shape).
    public bool FusedKernelsActive(KVCacheDtype? cacheDtype = null) =>
        UseFusedKernels && Device.type == TorchSharp.DeviceType.CUDA
        && CudaBackend.Supports(Config, Shape(cacheDtype ?? KVCacheDtype.Of(Dtype)), Device);

    /// Whether steps over a pool of cacheDtype run on some backend: an FP8 pool needs the fused kernels (libtorch here
    /// has no FP8 type for the plain path).
    public bool CanRun(KVCacheDtype cacheDtype) => !cacheDtype.IsFp8 || FusedKernelsActive(cacheDtype);

    /// Runs one step and returns the logits of its LogitRows: (numLogits, vocab) float32.
    public Tensor Forward(StepInputs inputs, PagedKVCache cache) => Run(inputs, cache, allRows: false);

    /// Runs one step and returns the logits of every new token: (numTokens, vocab) float32 (prompt logprobs, perplexity).
    public Tensor ForwardAllLogits(StepInputs inputs, PagedKVCache cache) => Run(inputs, cache, allRows: true);

    /// Sizes the fused backend's step buffers for the largest step the engine will send (no effect off CUDA).
    public void ReserveStepBuffers(KVCacheDtype cacheDtype, int maxTokens, int maxSeqs, int maxBlocksPerSeq)
    {
        if (FusedKernelsActive(cacheDtype)) Fused(cacheDtype).Buffers.Reserve(maxTokens, maxSeqs, maxBlocksPerSeq);
    }

    /// Captures decode steps of these batch sizes as CUDA graphs over this pool (fused backend only); decode steps of
    /// at most the largest size then replay them (DecodeGraphs). Call before the pool holds live K/V.
    public void CaptureDecodeGraphs(PagedKVCache cache, IReadOnlyList<int> batchSizes)
    {
        if (!FusedKernelsActive(cache.Dtype)) throw new InvalidOperationException("CUDA graphs need the fused CUDA backend");
        _graphs?.Dispose();
        _graphs = DecodeGraphs.Capture(_model, Fused(cache.Dtype), cache, batchSizes, MaxPositions);
    }

    /// The fused backend for a pool of cacheDtype (CUDA only): its kernels, stream and step buffers, for benchmarks
    /// that time a kernel alone.
    internal CudaBackend FusedBackend(KVCacheDtype cacheDtype) => Fused(cacheDtype);

    /// Runs one step eagerly on the fused backend with every operation timed (the benchmark's --profile):
    /// milliseconds per operation, the matrix products as the rest, and the whole step.
    internal IReadOnlyDictionary<string, double> ProfileStep(StepInputs inputs, PagedKVCache cache)
    {
        var backend = Fused(cache.Dtype);
        using var profile = new KernelProfile(backend.Stream.Handle);
        backend.Profile = profile;
        try
        {
            using var scope = NewDisposeScope();
            using var step = backend.Begin(inputs, cache);
            profile.BeginStep();
            _model.Forward(step, allRows: false);
            profile.EndStep();
            return profile.Read();
        }
        finally
        {
            backend.Profile = null;
        }
    }

    Tensor Run(StepInputs inputs, PagedKVCache cache, bool allRows)
    {
        CheckCache(cache);
        inputs.CheckFits(cache.NumBlocks);
        if (inputs.MaxContextLength > MaxPositions)
            throw new ArgumentException($"a sequence reaches position {inputs.MaxContextLength - 1}, past the {MaxPositions} positions this model serves");
        if (!allRows && UseCudaGraphs && _graphs?.Cache == cache && _graphs.TryReplay(inputs) is { } replayed) return replayed;
        using var step = Backend(cache.Dtype).Begin(inputs, cache);
        return _model.Forward(step, allRows);
    }

    DecoderBackend Backend(KVCacheDtype cacheDtype)
    {
        if (FusedKernelsActive(cacheDtype)) return Fused(cacheDtype);
        if (!CanRun(cacheDtype))
            throw new ArgumentException($"a {cacheDtype} KV cache needs the fused CUDA kernels, which do not run this model here");
        return _torch ??= new TorchBackend(Config, Rope);
    }

    CudaBackend Fused(KVCacheDtype cacheDtype)
    {
        if (!_fused.TryGetValue(cacheDtype, out var backend))
            _fused[cacheDtype] = backend = new CudaBackend(Config, Shape(cacheDtype), Rope, Device);
        return backend;
    }

    RopeTable Rope => _rope ??= new RopeTable(Config.Rope, Config.RotaryDim, MaxPositions, Device);

    KernelShape Shape(KVCacheDtype cacheDtype) =>
        new(Dtype, cacheDtype, Config.HeadDim, Config.RotaryDim, Config.NumAttentionHeads, Config.NumKeyValueHeads);

    void CheckCache(PagedKVCache cache)
    {
        var spec = cache.Spec;
        if (spec.NumLayers != Config.NumHiddenLayers || spec.NumKVHeads != Config.NumKeyValueHeads || spec.HeadDim != Config.HeadDim)
            throw new ArgumentException(
                $"KV cache ({spec.NumLayers} layers, {spec.NumKVHeads} KV heads, head dim {spec.HeadDim}) does not fit the model " +
                $"({Config.NumHiddenLayers}, {Config.NumKeyValueHeads}, {Config.HeadDim})");
    }

    public void Dispose()
    {
        _graphs?.Dispose();
        foreach (var backend in _fused.Values) backend.Dispose();
        _rope?.Dispose();
        _model.Dispose();
    }
}
