using Microsoft.Extensions.Logging;
using Serving.Engine.Config;
using Serving.Engine.Grammar;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Scheduling;
using Serving.Engine.Tokenization;
using static TorchSharp.torch;

namespace Serving.Engine.Execution;

/// Everything the engine builds at start-up, on its own thread: model, tokenizer, KV pool sized from the
/// options, scheduler, and what callers may read (ModelInfo, the prompt processor, the ids that end a sequence).
internal sealed record EngineSetup(EngineCore Core, ModelInfo Info, IPromptProcessor Prompts, IReadOnlySet<int> EosTokenIds)
{
    public static EngineSetup Create(EngineOptions options, Action<GenerationRequest> requestLeftQueue, ILogger logger)
    {
        var device = new Device(options.Device);
        Log.LoadingModel(logger, options.Model, options.Device, options.Dtype);
        var progress = new Progress<Weights.WeightLoadProgress>(p =>
        {
            if (p.TensorsLoaded == p.TotalTensors || p.TensorsLoaded % 64 == 0)
                Log.WeightProgress(logger, p.TensorsLoaded, p.TotalTensors, p.BytesLoaded);
        });
        var gpuMemory = device.type == TorchSharp.DeviceType.CUDA
            ? GpuMemoryProfiler.Start(Distributed.TensorParallelGroup.DevicesFor(device, options.TensorParallelSize))
            : null;
        // what the runner needs is decided and checked before the weights load
        var config = ModelLoader.ReadConfig(options.Model, options.HfOverrides);
        WeightQuantization.CheckFlag(options.Quantization, config.Quantization);
        if (WeightQuantization.IsOnlineFp8(options.Quantization, config.Quantization)
            && Cuda.Fp8Products.Unsupported(device, options.Dtype == "auto" ? null : ModelDtype.Parse(options.Dtype)) is { } fp8Refusal)
            throw new ModelLoadException("--quantization fp8: " + fp8Refusal);
        if (config.ClassifierFromToken.Count > 0 && options.TensorParallelSize > 1)
            throw new ModelLoadException("classifier_from_token (--hf-overrides) is not supported with --tensor-parallel-size above 1");
        var runner = Pooling.RunnerTypes.Resolve(options.Runner, config);
        var pooler = PoolerOf(options, runner, config);
        // the checkpoint's sentence-transformers Dense modules: a missing or misshapen file fails before the model loads,
        // and their memory is on the device before the KV cache is planned from what is left
        var dense = pooler is { Dense.Count: > 0 } ? new Pooling.DenseProjections(pooler.Dense, device) : null;
        LoadedModel? model = null;
        try
        {
            model = ModelLoader.Load(options.Model, options.Dtype, device, progress, options.TensorParallelSize, options.HfOverrides,
                lmHead: runner == Pooling.RunnerType.Generate, config: config,
                quantizeFp8: WeightQuantization.IsOnlineFp8(options.Quantization, config.Quantization));
            return Create(options with { Runner = runner }, pooler, model, dense, gpuMemory, requestLeftQueue, logger);
        }
        catch
        {
            model?.Dispose();
            dense?.Dispose();
            throw;
        }
    }

    /// The pooling runner's defaults (--pooler-config over the checkpoint's sentence-transformers modules), null for
    /// the generate runner; a setting the model cannot honour fails start-up naming the flag.
    static Pooling.PoolerConfig? PoolerOf(EngineOptions options, Pooling.RunnerType runner, ModelConfig config)
    {
        if (runner == Pooling.RunnerType.Generate)
            return options.PoolerConfig is null ? null
                : throw new ModelLoadException("--pooler-config applies to the pooling runner; start with --runner pooling");
        var pooler = Pooling.PoolerConfig.Resolve(options.Model, options.PoolerConfig, config.IsClassifier);
        if (config.IsClassifier && (pooler.Normalize || pooler.Dimensions is not null))
            throw new ModelLoadException("--pooler-config: a sequence classifier's logits are neither normalized nor cut (normalize false, no dimensions)");
        if (pooler.Dense.Count > 0 && pooler.Dense[0].InFeatures != config.HiddenSize)
            throw new ModelLoadException($"{pooler.Dense[0].Folder}: the Dense module takes {pooler.Dense[0].InFeatures} features, the model's hidden size is {config.HiddenSize}");
        if (pooler.Dimensions is { } dimensions)
        {
            try
            {
                ModelInfo.CheckDimensions(dimensions, config.AllowsMatryoshkaDimensions, config.MatryoshkaDimensions, pooler.EmbeddingSize(config.HiddenSize));
            }
            catch (InvalidRequestException error)
            {
                throw new ModelLoadException($"--pooler-config dimensions {dimensions}: {error.Message}", error);
            }
        }
        return pooler;
    }

    /// options.Runner is resolved (not auto); pooler is the pooling runner's (null for generate).
    static EngineSetup Create(EngineOptions options, Pooling.PoolerConfig? pooler, LoadedModel model, Pooling.DenseProjections? dense,
        GpuMemoryProfiler? gpuMemory, Action<GenerationRequest> requestLeftQueue, ILogger logger)
    {
        var pooling = pooler is not null;
        var config = model.Config;
        var maxModelLen = config.ResolveMaxModelLen(options.MaxModelLen);
        if (!config.IsCausal)
        {
            // a prompt attends both ways: computed whole in one step (no chunk sees a later one), never from a cached prefix
            options = options with
            {
                MaxNumBatchedTokens = Math.Max(options.MaxNumBatchedTokens, maxModelLen),
                LongPrefillTokenThreshold = 0,
                EnablePrefixCaching = false,
            };
            Log.Bidirectional(logger, options.MaxNumBatchedTokens);
        }
        Log.ModelLoaded(logger, config.ModelType, config.NumHiddenLayers, config.NumAttentionHeads,
            config.NumKeyValueHeads, config.HeadDim, model.DtypeName, options.Device);
        // an FP8 checkpoint's projections scaled per tensor, per channel or per 128 x 128 block are served in FP8 as stored
        // where FP8 products run (as --quantization fp8 serves a 16-bit checkpoint's), made so as they loaded (ModelLoader),
        // so this counts them; any other quantized weight stays dequantized, as it loaded
        var fp8Checkpoint = config.Quantization is { StoresFp8: true } && Cuda.Fp8Products.Unsupported(model.Device, model.Dtype) is null;
        var online = WeightQuantization.IsOnlineFp8(options.Quantization, config.Quantization);
        if (fp8Checkpoint || online)
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var count = online ? model.QuantizeWeightsToFp8() : model.KeepCheckpointFp8();
            if (count > 0)
                Log.WeightsQuantizedFp8(logger, online ? "--quantization fp8" : $"FP8 checkpoint ({config.Quantization})", count, model.Fp8Scales, model.DtypeName,
                    model.WeightBytes >> 20, model.UnquantizedWeightBytes >> 20, (long)System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        if (config.Quantization is { } quantization && !model.WeightsFp8) Log.WeightsDequantized(logger, quantization.ToString(), model.DtypeName);
        if (model.CheckpointFp8Left is { } left) Log.CheckpointFp8Left(logger, left);
        if (model.Shard is { Size: > 1 } shard)
            Log.TensorParallel(logger, shard.Size, string.Join(", ", model.Devices), shard.NumHeads, shard.NumKVHeads,
                shard.KVHeadReplicas, shard.IntermediateSize, shard.VocabRows);
        // before the KV cache is planned: the adapters' weights are memory it cannot have
        model.LoadLoraAdapters(options.LoraModules, options.MaxLoraRank, options.LoraCapacity);
        foreach (var adapter in model.LoraAdapters) Log.LoraAdapterLoaded(logger, adapter.Name, adapter.Path, adapter.Rank, adapter.NumProjections);
        var tokenizer = TextTokenizer.Load(TokenizerFolder(options, model));
        if (config.ClassifierFromToken.Count > 0)
            model.SetClassifierTokens([.. config.ClassifierFromToken.Select(token => tokenizer.TokenToId(token)
                ?? throw new ModelLoadException($"classifier_from_token '{token}' is not a token of the tokenizer's vocabulary"))]);
        var eosTokenIds = config.EosTokenIds.Concat(model.Generation.EosTokenIds).Concat(tokenizer.EosTokenIds)
            .ToHashSet();
        var cacheDtype = ResolveCacheDtype(options, model);
        model.MaxPositions = maxModelLen;
        model.ReserveStepBuffers(cacheDtype, options.MaxNumBatchedTokens, options.MaxNumSeqs, KVCache.SlotMapping.BlocksFor(maxModelLen, options.BlockSize));
        var capacity = PlanKVCache(options, model, cacheDtype, gpuMemory, maxModelLen);
        var kvCache = new KVCacheManager(capacity.NumBlocks, capacity.BlockSize, options.EnablePrefixCaching, config.AttentionSpan);
        maxModelLen = FitContext(options, kvCache, capacity, maxModelLen, logger);
        model.MaxPositions = maxModelLen;
        // a sequence of maxModelLen holds at most this many blocks at once (fewer than its length's when every layer slides)
        var blocksPerSequence = kvCache.MostBlocksHeld(maxModelLen, options.MaxNumBatchedTokens);
        Log.KVCachePlanned(logger, capacity.BytesPerToken, capacity.NumBlocks, capacity.BlockSize,
            capacity.CapacityTokens, capacity.MaxConcurrentSequences(blocksPerSequence), maxModelLen);
        var cache = model.CreateKVCache(capacity.NumBlocks, capacity.BlockSize, cacheDtype);
        // the pooling runner computes prompts only: no decode step to capture
        if (!options.EnforceEager && !pooling && gpuMemory is not null && model.CanCaptureGraphs(cacheDtype))
            CaptureGraphs(model, cache, options, gpuMemory, logger);
        cache.CalibrateScales = options.CalculateKVScales;   // after the capture: graphs replay plain decode steps
        var runner = new ModelRunner(model, cache);
        var scheduler = new Scheduler(new SchedulerOptions
        {
            MaxNumSeqs = options.MaxNumSeqs, MaxNumBatchedTokens = options.MaxNumBatchedTokens,
            LongPrefillTokenThreshold = options.LongPrefillTokenThreshold,
            MaxModelLen = maxModelLen, EosTokenIds = eosTokenIds, Policy = options.SchedulingPolicy, WholePromptsInOneStep = !config.IsCausal,
            Speculative = options.SpeculativeConfig,
        }, kvCache);
        manual_seed(options.Seed);
        var vocabulary = TokenVocabulary.Create(tokenizer, config.VocabSize, eosTokenIds);
        vocabulary.WarmUp();
        var core = new EngineCore(runner, scheduler, tokenizer, vocabulary, eosTokenIds, requestLeftQueue, logger, dense);
        var info = Describe(model, options, cacheDtype, capacity, maxModelLen) with { SamplingDefaults = SamplingDefaultsOf(options, model) };
        if (!info.SamplingDefaults.IsNone) Log.SamplingDefaults(logger, info.SamplingDefaults.ToString());
        if (pooler is not null)
        {
            info = info with { Pooler = pooler, EmbeddingSize = pooler.EmbeddingSize(config.HiddenSize) };
            Log.PoolingRunner(logger, pooler.ToString());
        }
        var prompts = new PromptProcessor(tokenizer, maxModelLen, options.ChatTemplate, options.DefaultChatTemplateKwargs,
            options.ChatTemplateContentFormat);
        if (prompts.ContentFormat is { } contentFormat)
            Log.ChatContentFormat(logger, contentFormat == Templates.ChatContentFormat.OpenAI ? "a list of parts (openai)" : "one string",
                options.ChatTemplateContentFormat?.ToString().ToLowerInvariant() ?? "auto");
        return new EngineSetup(core, info, prompts, eosTokenIds);
    }

    /// Decode steps of every batch size bucket as CUDA graphs, after the pool exists (the graphs read its tensors).
    static void CaptureGraphs(LoadedModel model, KVCache.PagedKVCache cache, EngineOptions options, GpuMemoryProfiler gpuMemory, ILogger logger)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var freeBefore = gpuMemory.FreeBytes();
        var batchSizes = DecodeGraphs.Buckets(options.MaxNumSeqs);
        model.CaptureDecodeGraphs(cache, batchSizes);
        var (tuned, tuningTime) = model.ProductTuning;
        if (tuned.Count > 0)
            Log.MatmulsTuned(logger, tuned.Count, (long)tuningTime.TotalMilliseconds, tuned.Count(t => t.Chosen));
        Log.GraphsCaptured(logger, batchSizes.Count, string.Join(",", batchSizes),
            (long)(System.Diagnostics.Stopwatch.GetElapsedTime(started) - tuningTime).TotalMilliseconds, (freeBefore - gpuMemory.FreeBytes()) >> 20);
    }

    static SamplingDefaults SamplingDefaultsOf(EngineOptions options, LoadedModel model)
    {
        var defaults = options.GenerationConfig switch
        {
            "auto" => model.Generation.SamplingDefaults,
            "vllm" => SamplingDefaults.None,
            var folder => GenerationConfig.Load(folder).SamplingDefaults,
        };
        return options.OverrideGenerationConfig is { } overrides ? defaults.With(overrides) : defaults;
    }

    static string TokenizerFolder(EngineOptions options, LoadedModel model)
    {
        var folder = options.Tokenizer ?? model.Directory;
        if (!Directory.Exists(folder))
            throw new ModelLoadException(
                $"'{options.Model}' has no tokenizer files (a preset shape with random weights); give a tokenizer folder (--tokenizer)");
        return folder;
    }

    /// The context once the pool is sized: under --max-model-len auto the longest sequence the pool holds whole (at
    /// most the model's); otherwise as asked, with a warning when one sequence of it does not fit (vLLM refuses to start
    /// there; here a request that cannot fit is refused, AdmissionCheck, and a shorter one is served).
    static int FitContext(EngineOptions options, KVCacheManager kvCache, KVCacheCapacity capacity, int maxModelLen, ILogger logger)
    {
        if (kvCache.MostBlocksHeld(maxModelLen, options.MaxNumBatchedTokens) <= kvCache.NumBlocks) return maxModelLen;
        if (options.MaxModelLen != EngineOptions.AutoMaxModelLen)
        {
            Log.KVCacheShorterThanContext(logger, capacity.CapacityTokens, maxModelLen);
            return maxModelLen;
        }
        // a sequence holds at most one block per BlockSize tokens, so the pool's tokens fit whole
        var fitted = (int)Math.Min(maxModelLen, capacity.CapacityTokens);
        Log.MaxModelLenFitted(logger, capacity.CapacityTokens, fitted, maxModelLen);
        return fitted;
    }

    /// --num-gpu-blocks-override wins; else on CUDA the pool gets --kv-cache-memory-bytes when given (checked to fit)
    /// or what --gpu-memory-utilization leaves after the weights and a warm-up step, and on CPU --kv-cache-memory-bytes
    /// (256 MiB by default).
    static KVCacheCapacity PlanKVCache(EngineOptions options, LoadedModel model, KVCacheDtype cacheDtype, GpuMemoryProfiler? gpuMemory,
        int maxModelLen)
    {
        // room for the adapters --max-loras allows beyond those loaded at start, at --max-lora-rank
        var loraReserve = (options.LoraCapacity - model.LoraAdapters.Count) * Model.Lora.LoraLoader.DeviceBytes(model.Config, options.MaxLoraRank, model.Dtype);
        var memory = options.NumGpuBlocksOverride is null && gpuMemory is not null
            ? gpuMemory.KVBudgetBytes(options, model, cacheDtype, maxModelLen, loraReserve)
            : options.KVCacheMemoryBytes ?? EngineOptions.CpuKVCacheBytes;
        if (memory <= 0 && loraReserve > 0)
            throw new ModelLoadException($"the {loraReserve} bytes set aside for LoRA adapters loaded while serving (--max-loras " +
                $"{options.LoraCapacity}, --max-lora-rank {options.MaxLoraRank}) leave no memory for the KV cache");
        return KVCacheSizing.Plan(model.KVCacheSpec(cacheDtype), memory, options.BlockSize, options.NumGpuBlocksOverride);
    }

    /// --kv-cache-dtype: auto is the model's dtype; a name the engine cannot store, or FP8 where the fused kernels
    /// do not run (CPU, a shape or GPU they do not take), fails start-up naming the flag.
    static KVCacheDtype ResolveCacheDtype(EngineOptions options, LoadedModel model)
    {
        KVCacheDtype dtype;
        try
        {
            dtype = KVCacheDtype.Resolve(options.KVCacheDtype, model.Dtype);
        }
        catch (ArgumentException error)
        {
            throw new ModelLoadException(error.Message, error);
        }
        if (!model.CanRun(dtype))
            throw new ModelLoadException(
                $"--kv-cache-dtype {options.KVCacheDtype} needs the fused CUDA kernels (--device cuda on an sm_89+ GPU, a {model.DtypeName} " +
                $"model with head dim {model.Config.HeadDim}), which do not run here (--device {options.Device}); use auto, bfloat16, float16 or float32");
        if (options.CalculateKVScales && !dtype.IsFp8)
            throw new ModelLoadException($"--calculate-kv-scales applies to an FP8 KV cache; --kv-cache-dtype is {dtype}");
        return dtype;
    }

    static ModelInfo Describe(LoadedModel model, EngineOptions options, KVCacheDtype cacheDtype, KVCacheCapacity capacity, int maxModelLen)
    {
        var config = model.Config;
        return new ModelInfo
        {
            Architecture = config.Architecture,
            ModelType = config.ModelType,
            NumLayers = config.NumHiddenLayers, HiddenSize = config.HiddenSize,
            NumAttentionHeads = config.NumAttentionHeads, NumKeyValueHeads = config.NumKeyValueHeads,
            HeadDim = config.HeadDim, VocabSize = config.VocabSize, MaxModelLen = maxModelLen,
            Dtype = model.DtypeName, KVCacheDtype = cacheDtype.Name, Device = options.Device,
            WeightStorage = model.WeightsFp8 ? "fp8" : null,
            TensorParallelSize = model.TensorParallelSize,
            BlockSize = capacity.BlockSize, NumKVBlocks = capacity.NumBlocks, KVBytesPerToken = capacity.BytesPerToken,
            Runner = options.Runner ?? Pooling.RunnerType.Generate,
            AllowsMatryoshkaDimensions = config.AllowsMatryoshkaDimensions,
            Labels = config.Labels,
            ProblemType = config.ProblemType,
            JoinsScorePairs = config.JoinsScorePairs,
            ScoreActivationIsIdentity = config.ScoreActivationIsIdentity,
            MatryoshkaDimensions = config.MatryoshkaDimensions,
        };
    }
}
