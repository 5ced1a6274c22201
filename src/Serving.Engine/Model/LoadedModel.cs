using Serving.Engine.Architectures;
using Serving.Engine.Config;
using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model.Backends;
using Serving.Engine.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// A checkpoint ready to run: its configs, the decoder with weights on the target device, and the backends that
/// run its steps (made on first use: the fused CUDA kernels where they apply, else plain TorchSharp). Forward calls
/// must come from one thread (the engine thread); the caller's dispose scope owns the results.
///
/// Under tensor parallelism over N ranks (../Distributed) this object is rank 0, on the calling thread, and drives ranks
/// 1 .. N-1, each a LoadedModel of its own shard on a thread of its own: every step, pool and setting given here
/// reaches them too, and the logits returned are the whole vocabulary's. Sizes it reports (weights, KV bytes per
/// token) are one rank's, i.e. per GPU.
public sealed partial class LoadedModel : IDisposable
{
    readonly CausalLM _model;
    readonly ICommunicator? _communicator;   // this rank's collectives; null at one rank
    readonly PeerRanks? _peers;              // ranks 1 .. N-1 (rank 0 only, N > 1)
    readonly Dictionary<KVCacheDtype, CudaBackend> _fused = new();   // by KV cache dtype, all on _stream
    CudaStream? _stream;
    RopeTable? _rope, _localRope;
    TorchBackend? _torch;
    int _maxPositions;
    bool _useFusedKernels = true;
    bool _useCudaGraphs = true;
    DecodeGraphs? _graphs;
    readonly List<Lora.LoraAdapter> _loraAdapters = [];
    long _loraLoads;

    internal LoadedModel(string directory, CausalLM model, GenerationConfig generation, ICommunicator? communicator = null,
        PeerRanks? peers = null)
    {
        Directory = directory;
        (_model, _communicator, _peers) = (model, communicator, peers);
        Generation = generation;
        _maxPositions = model.Config.MaxContextLength;
    }

    public string Directory { get; }
    /// The whole model's config (config.json), at every tensor-parallel size.
    public ModelConfig Config => _model.Shard.Model;
    public GenerationConfig Generation { get; }
    public ScalarType Dtype => _model.Dtype;
    public string DtypeName => ModelDtype.Name(Dtype);
    /// Rank 0's device.
    public Device Device => _model.Device;
    /// Ranks the model is split over (--tensor-parallel-size); 1 runs the whole model on Device.
    public int TensorParallelSize => _model.Shard.Size;
    /// This rank's part of the model (rank 0's; the whole model at one rank): heads, KV heads, ffn and vocabulary rows.
    public ModelShard Shard => _model.Shard;
    /// Every rank's device, in rank order.
    public IReadOnlyList<Device> Devices => [Device, .. _peers?.Models.Select(peer => peer.Device) ?? []];

    /// Positions the rotary table covers (the served max model length); set before the first step.
    public int MaxPositions
    {
        get => _maxPositions;
        set
        {
            _maxPositions = value;
            foreach (var peer in Peers) peer.MaxPositions = value;
        }
    }

    /// Run steps through the fused CUDA kernels where they apply (default); false forces the plain TorchSharp path.
    public bool UseFusedKernels
    {
        get => _useFusedKernels;
        set
        {
            _useFusedKernels = value;
            foreach (var peer in Peers) peer.UseFusedKernels = value;
        }
    }

    /// Replay captured decode graphs where they apply (default); false runs every step eagerly.
    public bool UseCudaGraphs
    {
        get => _useCudaGraphs;
        set
        {
            _useCudaGraphs = value;
            foreach (var peer in Peers) peer.UseCudaGraphs = value;
        }
    }

    /// The batch sizes of the captured decode graphs (empty before CaptureDecodeGraphs).
    public IReadOnlyList<int> CudaGraphBatchSizes => _graphs?.BatchSizes ?? [];

    /// What the capture timed of the matrix products, the 16-bit ones' (MatmulTuning) and the FP8 ones' (Fp8Products),
    /// and how long it took (rank 0's under tensor parallelism); empty before a capture or when it did not tune.
    internal (IReadOnlyList<Cuda.TunedMatmul> Results, TimeSpan Time) ProductTuning => _graphs?.MatmulTuning is not { } tuning
        ? ([], TimeSpan.Zero)
        : ([.. tuning.Results, .. Fp8Products?.TuningResults ?? []], tuning.TuningTime + (Fp8Products?.TuningTime ?? TimeSpan.Zero));

    /// Bytes of all weights on the device (the embedding table once more when the LM head is untied; FP8 projections at
    /// a byte an element); one rank's.
    public long WeightBytes => _model.parameters().Sum(p => p.NumberOfElements * p.ElementSize) + _model.Fp8WeightBytes;

    /// Bytes a step of numTokens tokens must read from the weights: every matrix and norm once, the LM head once,
    /// and one embedding row per token (an untied embedding table is not read whole); of a mixture's experts (ExpertWeights)
    /// only those its tokens are expected to pick, routed uniformly: 1 - (1 - k / E)^tokens of each layer's.
    public long StepWeightBytes(int numTokens)
    {
        var table = _model.EmbeddingTable;
        var rowBytes = table.size(1) * table.ElementSize;
        var untiedTable = Config.TieWordEmbeddings ? 0 : table.NumberOfElements * table.ElementSize;
        var unpicked = Config.NumExperts == 0 ? 0 : Math.Pow(1 - (double)Config.NumExpertsPerToken / Config.NumExperts, numTokens);
        return WeightBytes - untiedTable + numTokens * rowBytes - (long)(_model.ExpertWeightBytes * unpicked);
    }

    /// Per layer [k_scale, v_scale] of an FP8 KV cache, when the checkpoint carries them (self_attn.k_scale and
    /// v_scale, as vLLM reads them); null otherwise.
    public float[,]? CheckpointKVScales { get; init; }

    /// What a KV pool for this model holds per token on one GPU (a rank's KV heads), in cacheDtype (null: the model's).
    public KVCacheSpec KVCacheSpec(KVCacheDtype? cacheDtype = null) =>
        KVCache.KVCacheSpec.For(_model.Config, cacheDtype ?? KVCacheDtype.Of(Dtype));

    /// A KV pool matching this model (layers, KV heads, head dim) on its device, in cacheDtype (null: the model's); under
    /// tensor parallelism every rank gets its pool of the same blocks (PagedKVCache.RankPools). An FP8 pool starts with
    /// the checkpoint's scales where it has them.
    public PagedKVCache CreateKVCache(int numBlocks, int blockSize, KVCacheDtype? cacheDtype = null)
    {
        var rankPools = _peers?.Invoke(peer => peer.CreateKVCache(numBlocks, blockSize, cacheDtype)) ?? [];
        try
        {
            var cache = new PagedKVCache(KVCacheSpec(cacheDtype), numBlocks, blockSize, Device) { RankPools = rankPools };
            if (cache.Dtype.IsFp8 && CheckpointKVScales is { } scales) cache.SetScales(scales);
            return cache;
        }
        catch
        {
            foreach (var pool in rankPools) pool.Dispose();
            throw;
        }
    }

    /// A KV pool in one of libtorch's float types.
    public PagedKVCache CreateKVCache(int numBlocks, int blockSize, ScalarType cacheDtype) =>
        CreateKVCache(numBlocks, blockSize, KVCacheDtype.Of(cacheDtype));

    /// Whether steps over a pool of cacheDtype run the fused CUDA kernels (CUDA, a supported dtype and shape).
    public bool FusedKernelsActive(KVCacheDtype? cacheDtype = null) =>
        UseFusedKernels && Device.type == TorchSharp.DeviceType.CUDA
        && CudaBackend.Supports(_model.Config, Shape(cacheDtype ?? KVCacheDtype.Of(Dtype)), Device);

    /// Whether decode steps over a pool of cacheDtype can be captured as CUDA graphs: the fused backend runs them and
    /// they never wait for the host (StepWaitsForTheHost).
    public bool CanCaptureGraphs(KVCacheDtype cacheDtype) => FusedKernelsActive(cacheDtype) && !StepWaitsForTheHost;

    /// Whether a step on the fused backend reads the device's results on the host before it ends: a mixture whose
    /// experts' groups are counted there (CausalLM.StepWaitsForTheHost).
    public bool StepWaitsForTheHost => _model.StepWaitsForTheHost;

    /// Whether steps over a pool of cacheDtype run on some backend: an FP8 pool needs the fused kernels (libtorch here
    /// has no FP8 type for the plain path).
    public bool CanRun(KVCacheDtype cacheDtype) => !cacheDtype.IsFp8 || FusedKernelsActive(cacheDtype);

    /// Runs one step and returns the logits of its LogitRows: (numLogits, vocab) float32.
    public Tensor Forward(StepInputs inputs, PagedKVCache cache) => Run(inputs, cache, allRows: false).Logits;

    /// Runs one step and returns the logits of every new token: (numTokens, vocab) float32 (prompt logprobs, perplexity).
    public Tensor ForwardAllLogits(StepInputs inputs, PagedKVCache cache) => Run(inputs, cache, allRows: true).Logits;

    /// Runs one step and returns the logits of its LogitRows (of every new token with allLogits) and the final hidden
    /// states of its HiddenRows, for pooling (null when it has none).
    public StepOutput Step(StepInputs inputs, PagedKVCache cache, bool allLogits = false) => Run(inputs, cache, allLogits);

    /// classifier_from_token: the tokens' ids whose LM-head rows make the classifier (one rank: refused under tensor
    /// parallelism by EngineSetup, since a rank holds part of the vocabulary).
    public void SetClassifierTokens(IReadOnlyList<int> tokenIds)
    {
        if (_peers is not null) throw new ModelLoadException("classifier_from_token is not supported with --tensor-parallel-size above 1");
        _model.SetClassifierTokens(tokenIds);
    }

    /// False when the model was loaded without its LM head (the pooling runner): steps return hidden states only.
    public bool HasLmHead => _model.HasLmHead;

    /// Sizes the fused backend's step buffers for the largest step the engine will send (no effect off CUDA).
    public void ReserveStepBuffers(KVCacheDtype cacheDtype, int maxTokens, int maxSeqs, int maxBlocksPerSeq)
    {
        _peers?.Invoke(peer =>
        {
            peer.ReserveStepBuffers(cacheDtype, maxTokens, maxSeqs, maxBlocksPerSeq);
            return true;
        });
        if (FusedKernelsActive(cacheDtype)) Fused(cacheDtype).Buffers.Reserve(maxTokens, maxSeqs, maxBlocksPerSeq);
    }

    /// Captures decode steps of these batch sizes as CUDA graphs over this pool (fused backend only); decode steps of
    /// at most the largest size then replay them (DecodeGraphs). Call before the pool holds live K/V. Under tensor
    /// parallelism every rank captures its graphs at once (the eager run before each capture meets in the
    /// collectives; the captured all-reduces replay on each rank's stream), each over its own pool.
    /// tuneMatmuls: time the matrix products at these batch sizes first (MatmulTuning, Fp8Products.Tune); false keeps
    /// the libraries' default choices.
    public void CaptureDecodeGraphs(PagedKVCache cache, IReadOnlyList<int> batchSizes, bool tuneMatmuls = true)
    {
        if (!CanCaptureGraphs(cache.Dtype))
            throw new InvalidOperationException("CUDA graphs need the fused CUDA backend and steps that never wait for the host");
        if (_peers is null)
        {
            CaptureRankGraphs(cache, batchSizes, tuneMatmuls);
            return;
        }
        _peers.Step((peer, rank) => peer.CaptureRankGraphs(cache.RankPools[rank - 1], batchSizes, tuneMatmuls), () =>
        {
            CaptureRankGraphs(cache, batchSizes, tuneMatmuls);
            return true;
        });
    }

    void CaptureRankGraphs(PagedKVCache cache, IReadOnlyList<int> batchSizes, bool tuneMatmuls)
    {
        _graphs?.Dispose();
        _graphs = null;
        _graphs = DecodeGraphs.Capture(_model, Fused(cache.Dtype), Fp8Products, cache, batchSizes, MaxPositions, tuneMatmuls);
    }

    /// The fused backend for a pool of cacheDtype (CUDA only): its kernels, stream and step buffers, for benchmarks
    /// that time a kernel alone.
    internal CudaBackend FusedBackend(KVCacheDtype cacheDtype) => Fused(cacheDtype);

    /// Runs one step eagerly on the fused backend with every operation timed (the benchmark's --profile):
    /// milliseconds per operation, the matrix products as the rest, and the whole step.
    internal IReadOnlyDictionary<string, double> ProfileStep(StepInputs inputs, PagedKVCache cache)
    {
        // the other ranks would have to run the step too: their collectives meet rank 0's
        if (_peers is not null) throw new NotSupportedException("profiling times one GPU's whole step; profile without tensor parallelism");
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

    /// The step on every rank at once (rank 0 here, the peers on their threads with their pools); rank 0's output.
    StepOutput Run(StepInputs inputs, PagedKVCache cache, bool allRows)
    {
        // every refusal comes before any rank starts, so none is left waiting in a collective for a rank that refused
        CheckCache(cache);
        inputs.CheckFits(cache.NumBlocks);
        if (inputs.MaxContextLength > MaxPositions)
            throw new ArgumentException($"a sequence reaches position {inputs.MaxContextLength - 1}, past the {MaxPositions} positions this model serves");
        if (!CanRun(cache.Dtype))
            throw new ArgumentException($"a {cache.Dtype} KV cache needs the fused CUDA kernels, which do not run this model here");
        if (_peers is null) return RunRank(inputs, cache, allRows);
        if (cache.RankPools.Count != TensorParallelSize - 1)
            throw new ArgumentException($"the KV cache has pools for {cache.RankPools.Count + 1} ranks, the model runs on {TensorParallelSize}; make it with CreateKVCache");
        return _peers.Step((peer, rank) => peer.RunRank(inputs, cache.RankPools[rank - 1], allRows),
            () => RunRank(inputs, cache, allRows));
    }

    // every rank decides alike whether its graphs replay the step: their state (buckets, buffers, pool) is the same
    StepOutput RunRank(StepInputs inputs, PagedKVCache cache, bool allRows)
    {
        CheckCache(cache);
        // the graphs hold the base model's steps and return logits only: a step with adapters or pooled rows runs eagerly
        if (!allRows && UseCudaGraphs && !inputs.HasAdapters && inputs.HiddenRows.Length == 0 && _graphs?.Cache == cache
            && _graphs.TryReplay(inputs) is { } replayed) return new StepOutput(replayed, null);
        using var step = Backend(cache.Dtype).Begin(inputs, cache);
        using var lora = Lora.LoraStep.For(inputs, _loraAdapters, Device);
        step.Lora = lora;
        return _model.Forward(step, allRows, inputs.HiddenRows);
    }

    // backends compute this rank's shapes (_model.Config: its heads, KV heads, ffn and vocabulary rows)
    DecoderBackend Backend(KVCacheDtype cacheDtype) =>
        FusedKernelsActive(cacheDtype) ? Fused(cacheDtype) : _torch ??= new TorchBackend(_model.Config, Rope, LocalRope) { Communicator = _communicator };

    CudaBackend Fused(KVCacheDtype cacheDtype)
    {
        if (!_fused.TryGetValue(cacheDtype, out var backend))
        {
            _stream ??= CudaStream.Create(CudaDevice.Open(Math.Max(Device.index, 0)));
            _fused[cacheDtype] = backend = new CudaBackend(_model.Config, Shape(cacheDtype), Rope, LocalRope, Device, _stream) { Communicator = _communicator };
        }
        return backend;
    }

    RopeTable Rope => _rope ??= new RopeTable(Config.Rope, Config.RotaryDim, MaxPositions, Device);
    /// The sliding-window layers' own rotary table (gemma3's rope_local_base_freq); null when they use Rope.
    RopeTable? LocalRope => Config.LocalRope is { } local ? _localRope ??= new RopeTable(local, Config.RotaryDim, MaxPositions, Device) : null;

    KernelShape Shape(KVCacheDtype cacheDtype) => KernelShape.Of(_model.Config, Dtype, cacheDtype);

    IEnumerable<LoadedModel> Peers => _peers?.Models ?? [];

    void CheckCache(PagedKVCache cache)
    {
        var (spec, config) = (cache.Spec, _model.Config);
        if (spec.NumLayers != config.NumHiddenLayers || spec.NumKVHeads != config.NumKeyValueHeads || spec.HeadDim != config.HeadDim)
            throw new ArgumentException(
                $"KV cache ({spec.NumLayers} layers, {spec.NumKVHeads} KV heads, head dim {spec.HeadDim}) does not fit the model " +
                $"({config.NumHiddenLayers}, {config.NumKeyValueHeads}, {config.HeadDim})");
    }

    public void Dispose()
    {
        _graphs?.Dispose();
        foreach (var adapter in _loraAdapters) adapter.Dispose();
        foreach (var backend in _fused.Values) backend.Dispose();   // waits for this rank's stream, collectives included
        _stream?.Dispose();
        _peers?.Dispose();
        _rope?.Dispose();
        _localRope?.Dispose();
        _model.Dispose();
    }
}
