using Microsoft.Extensions.Logging;
using Serving.Engine.Config;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Scheduling;
using Serving.Engine.Tokenization;
using static TorchSharp.torch;

namespace Serving.Engine.Execution;

/// Everything the engine builds at start-up, on its own thread: model, tokenizer, KV pool sized from the
/// options, scheduler, and what callers may read (ModelInfo, the prompt processor).
internal sealed record EngineSetup(EngineCore Core, ModelInfo Info, IPromptProcessor Prompts)
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
        var gpuMemory = device.type == TorchSharp.DeviceType.CUDA ? GpuMemoryProfiler.Start(device) : null;
        var model = ModelLoader.Load(options.Model, options.Dtype, device, progress);
        try
        {
            return Create(options, model, gpuMemory, requestLeftQueue, logger);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    static EngineSetup Create(EngineOptions options, LoadedModel model, GpuMemoryProfiler? gpuMemory,
        Action<GenerationRequest> requestLeftQueue, ILogger logger)
    {
        var config = model.Config;
        Log.ModelLoaded(logger, config.ModelType, config.NumHiddenLayers, config.NumAttentionHeads,
            config.NumKeyValueHeads, config.HeadDim, model.DtypeName, options.Device);
        var tokenizer = TextTokenizer.Load(TokenizerFolder(options, model));
        var eosTokenIds = config.EosTokenIds.Concat(model.Generation.EosTokenIds).Concat(tokenizer.EosTokenIds)
            .ToHashSet();
        var maxModelLen = config.ResolveMaxModelLen(options.MaxModelLen);
        var capacity = PlanKVCache(options, model, gpuMemory, maxModelLen);
        Log.KVCachePlanned(logger, capacity.BytesPerToken, capacity.NumBlocks, capacity.BlockSize,
            capacity.CapacityTokens, capacity.MaxConcurrentSequences(maxModelLen), maxModelLen);
        var runner = new ModelRunner(model, model.CreateKVCache(capacity.NumBlocks, capacity.BlockSize));
        var scheduler = new Scheduler(new SchedulerOptions
        {
            MaxNumSeqs = options.MaxNumSeqs, MaxNumBatchedTokens = options.MaxNumBatchedTokens,
            MaxModelLen = maxModelLen, EosTokenIds = eosTokenIds,
        }, new KVCacheManager(capacity.NumBlocks, capacity.BlockSize, options.EnablePrefixCaching));
        manual_seed(options.Seed);
        var core = new EngineCore(runner, scheduler, tokenizer, eosTokenIds, requestLeftQueue, logger);
        var info = Describe(model, options, capacity, maxModelLen) with { SamplingDefaults = SamplingDefaultsOf(options, model) };
        if (!info.SamplingDefaults.IsNone) Log.SamplingDefaults(logger, info.SamplingDefaults.ToString());
        return new EngineSetup(core, info, new PromptProcessor(tokenizer, maxModelLen));
    }

    static SamplingDefaults SamplingDefaultsOf(EngineOptions options, LoadedModel model) => options.GenerationConfig switch
    {
        "auto" => model.Generation.SamplingDefaults,
        "vllm" => SamplingDefaults.None,
        var folder => GenerationConfig.Load(folder).SamplingDefaults,
    };

    static string TokenizerFolder(EngineOptions options, LoadedModel model)
    {
        var folder = options.Tokenizer ?? model.Directory;
        if (!Directory.Exists(folder))
            throw new ModelLoadException(
                $"'{options.Model}' has no tokenizer files (a preset shape with random weights); give a tokenizer folder (--tokenizer)");
        return folder;
    }

    /// --num-gpu-blocks-override wins; else on CUDA the pool gets what --gpu-memory-utilization leaves after the
    /// weights and a warm-up step, and on CPU --kv-cache-memory bytes.
    static KVCacheCapacity PlanKVCache(EngineOptions options, LoadedModel model, GpuMemoryProfiler? gpuMemory, int maxModelLen)
    {
        var spec = KVCacheSpec.For(model.Config, model.Dtype);
        var memory = options.NumGpuBlocksOverride is null && gpuMemory is not null
            ? gpuMemory.KVBudgetBytes(options, model, maxModelLen)
            : options.KVCacheMemoryBytes;
        return KVCacheSizing.Plan(spec, memory, options.BlockSize, options.NumGpuBlocksOverride);
    }

    static ModelInfo Describe(LoadedModel model, EngineOptions options, KVCacheCapacity capacity, int maxModelLen)
    {
        var config = model.Config;
        return new ModelInfo
        {
            Architecture = config.Architectures.FirstOrDefault() ?? config.ModelType,
            ModelType = config.ModelType,
            NumLayers = config.NumHiddenLayers, HiddenSize = config.HiddenSize,
            NumAttentionHeads = config.NumAttentionHeads, NumKeyValueHeads = config.NumKeyValueHeads,
            HeadDim = config.HeadDim, VocabSize = config.VocabSize, MaxModelLen = maxModelLen,
            Dtype = model.DtypeName, Device = options.Device,
            BlockSize = capacity.BlockSize, NumKVBlocks = capacity.NumBlocks, KVBytesPerToken = capacity.BytesPerToken,
        };
    }
}
