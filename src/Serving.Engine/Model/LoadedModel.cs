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
public sealed class LoadedModel : IDisposable
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

    /// The FP8 projections' products (CausalLM.StoreFp8), for benchmarks that compare their kernels; null until a
    /// projection was offered to FP8 (made then even where none is stored). Rank 0's.
    internal Fp8Products? Fp8Products => _model.Fp8Products;

    /// Whether the decoder's projections are stored as FP8 (QuantizeWeightsToFp8).
    public bool WeightsFp8 => _model.Fp8Weights().Count > 0;

    /// How the FP8 projections are scaled, for the start log: per tensor, per channel or per block (how many), and where
    /// cuBLASLt takes no vectors of scales, what that changes. Rank 0's.
    public string Fp8Scales
    {
        get
        {
            var weights = _model.Fp8Weights();
            var (perChannel, perBlock) = (weights.Count(w => w.Scaling == Fp8Scaling.PerChannel), weights.Count(w => w.Scaling == Fp8Scaling.PerBlock));
            if (perChannel + perBlock == 0) return "a scale per tensor";
            string On(int count) => count == weights.Count ? "" : $" on {count}";
            var parts = new List<string>();
            if (perChannel > 0)
                parts.Add($"a scale per output channel{On(perChannel)}, " + (Fp8Products?.RowScalesRefusal is { } refusal
                    ? $"inputs of more than {Fp8Products.FewRows} rows per tensor and outputs scaled per channel after the product: cuBLASLt takes no vectors of scales here ({refusal})"
                    : "inputs per token"));
            if (perBlock > 0)
                parts.Add($"a scale per {Fp8Products.ScaleBlock} x {Fp8Products.ScaleBlock} block{On(perBlock)}, inputs per token and {Fp8Products.ScaleBlock} columns");
            if (perChannel + perBlock < weights.Count) parts.Add("per tensor on the others");
            return string.Join("; ", parts);
        }
    }

    /// Why projections an FP8 checkpoint stored with scales stay in the model's type where the others are served in FP8
    /// (KeepCheckpointFp8: scales per block where cuBLASLt takes no blocks of scales, Fp8Products.BlockScalesRefusal, or
    /// blocks FP8 products do not take); null when none does. Rank 0's.
    public string? CheckpointFp8Left => _model.CheckpointFp8Left == 0 ? null
        : $"{_model.CheckpointFp8Left} projections (a layer's experts of one kind count as one) the checkpoint stored in FP8 stay in {DtypeName}: their scales are per block and " +
            (Fp8Products?.BlockScalesRefusal is { } refusal ? $"cuBLASLt takes no blocks of scales here ({refusal})"
                : $"not one scale per whole {Fp8Products.ScaleBlock} x {Fp8Products.ScaleBlock} block of the projection (a fused part of " +
                    $"fewer rows, an expert's rows not whole blocks, or a tensor-parallel rank's rows starting inside a block)");

    /// Bytes of the FP8 projections (in WeightBytes, a byte an element); 0 unless WeightsFp8. One rank's.
    public long Fp8WeightBytes => _model.Fp8WeightBytes;

    /// What WeightBytes would be with the FP8 projections in the model's type. One rank's.
    public long UnquantizedWeightBytes =>
        WeightBytes + _model.Fp8Weights().Sum(weight => weight.Values.NumberOfElements * _model.EmbeddingTable.ElementSize - weight.Bytes);

    /// --quantization fp8 on a checkpoint stored in 16 bits, as vLLM's online fp8: the decoder's projections become FP8
    /// with a scale per tensor (CausalLM.Fp8Projections) and their products run on FP8 tensor cores, their inputs
    /// quantized per step (../Cuda/Fp8Products.cs); the memory they held in the model's type goes back to the device
    /// before the KV cache is planned. No FP8 products are made where no projection has a shape they take (returns 0,
    /// WeightsFp8 stays false). On every rank. ModelLoader.Load's quantizeFp8 does this as the checkpoint loads, one
    /// projection at a time, which leaves nothing to do here. Returns how many projections a rank holds in FP8. Throws
    /// ModelLoadException where FP8 products cannot run (CPU, before sm_89, a float32 model).
    public int QuantizeWeightsToFp8() => StoreFp8("--quantization fp8", peer => peer.QuantizeWeightsToFp8(), online: true);

    /// How an FP8 checkpoint is served where FP8 products run: each projection it stored in FP8 with a scale per tensor,
    /// per output channel or per 128 x 128 block (IFp8Storable.CheckpointFp8Scales) becomes FP8 again with the checkpoint's
    /// own values, made back from the 16-bit ones it loaded as (exactly, for a bfloat16 model), and its scales (a fused
    /// projection's parts keep theirs); the rest (projections the checkpoint left in 16 bits, blocks FP8 products do
    /// not take here: CheckpointFp8Left) stay in the model's type. ModelLoader does this as the checkpoint loads where
    /// FP8 products run (one projection at a time, ../Model/Fp8ProjectionsAsLoaded), which leaves nothing to do here.
    /// Returns how many projections a rank holds in FP8 (0: none, WeightsFp8 stays false); throws as
    /// QuantizeWeightsToFp8.
    public int KeepCheckpointFp8() => StoreFp8("an FP8 checkpoint", peer => peer.KeepCheckpointFp8(), online: false);

    /// Gives each projection FP8 takes the scales its checkpoint would have stored it with, on every rank: one per output
    /// channel (its row's largest magnitude over 448), or perBlock one per 128 x 128 block (a projection not of whole
    /// blocks gets none and stays in the model's type); KeepCheckpointFp8 then serves the 16-bit weights as an FP8 checkpoint of them is served (llm-compressor's
    /// FP8-dynamic; DeepSeek's and Qwen's -FP8). For benchmarks of those paths on preset shapes (serving-bench -q
    /// fp8-channel, fp8-block).
    internal void ScaleProjectionsAsCheckpoint(bool perBlock)
    {
        _peers?.Invoke(peer =>
        {
            peer.ScaleProjectionsAsCheckpoint(perBlock);
            return true;
        });
        using var noGrad = no_grad();
        const int block = Fp8Products.ScaleBlock;
        foreach (var projection in _model.Fp8Projections())
        {
            // each part whole blocks (a block across two experts is no checkpoint's)
            if (perBlock && (projection.PartRows % block != 0 || projection.Shape[1] % block != 0)) continue;
            using var scope = NewDisposeScope();
            // it lives with the projection, whatever scope this runs in (a peer rank's job has one)
            projection.CheckpointFp8Scales = Fp8Products.CheckpointScales(projection.Weight, perBlock).cpu().DetachFromDisposeScope();
        }
    }

    // the projections FP8 products take still in the model's type (Fp8Projections) stored in FP8 on every rank: all of
    // them online, else those with their checkpoint's scales (CausalLM.StoreFp8); how many a rank holds in FP8
    int StoreFp8(string what, Func<LoadedModel, int> onPeer, bool online)
    {
        if (Fp8Products.Unsupported(Device, Dtype) is { } reason) throw new ModelLoadException($"{what}: {reason}");
        _peers?.Invoke(peer => onPeer(peer) > 0);
        foreach (var projection in _model.Fp8Projections().Where(projection => online || projection.CheckpointFp8Scales is not null))
            _model.StoreFp8(projection, online);
        return _model.Fp8Weights().Count;
    }

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

    /// The LoRA adapters steps may run sequences with (StepSequence.Adapter indexes them), in load order.
    internal IReadOnlyList<Lora.LoraAdapter> LoraAdapters => _loraAdapters;

    /// Loads PEFT LoRA adapters (vLLM's --lora-modules) onto the model's device; ModelLoadException names the one at
    /// fault. Not under tensor parallelism.
    public void LoadLoraAdapters(IReadOnlyList<Lora.LoraAdapterSource> sources, int maxRank, int? capacity = null)
    {
        if (capacity is { } most)
        {
            if (sources.Count > most) throw new ModelLoadException($"{sources.Count} LoRA adapters are given, --max-loras is {most}");
            MaxLoraAdapters = most;
        }
        if (_peers is not null && (sources.Count > 0 || capacity > 0))
            throw new ModelLoadException("LoRA adapters (--enable-lora) are not supported with --tensor-parallel-size above 1");
        if (Config.NumExperts > 0 && (sources.Count > 0 || capacity > 0))
            throw new ModelLoadException("LoRA adapters (--enable-lora) are not supported on a mixture-of-experts model");
        if (sources.Count == 0) return;
        foreach (var source in sources)
        {
            if (_loraAdapters.Any(a => a.Name == source.Name)) throw new ModelLoadException($"LoRA adapter name '{source.Name}' is given twice");
            AddLoraAdapter(LoadLoraAdapter(source, maxRank));
        }
    }

    /// Reads an adapter for this model onto its device (any thread; AddLoraAdapter then serves it).
    internal Lora.LoraAdapter LoadLoraAdapter(Lora.LoraAdapterSource source, int maxRank)
    {
        if (_peers is not null) throw new ModelLoadException("LoRA adapters (--lora-modules) are not supported with --tensor-parallel-size above 1");
        if (Config.NumExperts > 0) throw new ModelLoadException("LoRA adapters are not supported on a mixture-of-experts model");
        return Lora.LoraLoader.Load(source, Config, maxRank, Dtype, Device);
    }

    /// The most adapters served at once (--max-loras).
    public int MaxLoraAdapters { get; private set; } = int.MaxValue;

    /// Serves a loaded adapter from the next step on (the engine thread, between steps).
    internal void AddLoraAdapter(Lora.LoraAdapter adapter)
    {
        if (_loraAdapters.Any(a => a.Name == adapter.Name)) throw new InvalidOperationException($"LoRA adapter '{adapter.Name}' is already loaded");
        if (_loraAdapters.Count >= MaxLoraAdapters)
            throw new InvalidOperationException($"{MaxLoraAdapters} LoRA adapters are loaded, the most at once (--max-loras); unload one first");
        adapter.Key = $"{adapter.Name}#{++_loraLoads}";
        _loraAdapters.Add(adapter);
    }

    /// Stops serving an adapter and frees its weights (the engine thread, between steps, no sequence using it).
    internal bool RemoveLoraAdapter(string name)
    {
        var index = LoraAdapterIndex(name);
        if (index < 0) return false;
        _stream?.Synchronize();   // no step still queued on the model's stream reads the weights being freed
        _loraAdapters[index].Dispose();
        _loraAdapters.RemoveAt(index);
        return true;
    }

    /// The index of a loaded adapter (StepSequence.Adapter), or -1 when none has the name.
    public int LoraAdapterIndex(string name) => _loraAdapters.FindIndex(a => a.Name == name);

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
