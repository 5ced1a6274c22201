using Serving.Engine.Architectures;
using Serving.Engine.Config;
using Serving.Engine.Distributed;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Loads a Hugging Face checkpoint folder (config.json, generation_config.json, safetensors) into a LoadedModel.
/// Everything is checked before the model is allocated: the config (ModelConfigException, naming the field; an
/// unsupported architecture lists the supported ones), the tensor-parallel size against the model's heads
/// (ModelLoadException naming both numbers) and every tensor's presence, shape and dtype against the architecture's
/// layout (CheckpointException, naming the tensor). Under tensor parallelism each rank loads straight into its shard,
/// on its own thread, reading only its rows or columns of each tensor.
public static class ModelLoader
{
    /// hfOverrides: config.json fields to replace (--hf-overrides). lmHead false: the decoder without its LM head
    /// (the pooling runner's: an embedding checkpoint often has none, and the hidden states need none), even when the
    /// checkpoint holds one; the embedding table stays.
    /// config: the folder's config as ReadConfig gave it (the caller already read it), else read here.
    /// quantizeFp8: --quantization fp8 on a 16-bit checkpoint (vLLM's online fp8): where FP8 products run, each decoder
    /// projection is stored in FP8 as it loads, one at a time (never the whole model in 16 bits), as
    /// LoadedModel.QuantizeWeightsToFp8 stores them after the load.
    public static LoadedModel Load(string directory, string dtype = "auto", Device? device = null,
        IProgress<WeightLoadProgress>? progress = null, int tensorParallelSize = 1, HfOverrides? hfOverrides = null, bool lmHead = true,
        ModelConfig? config = null, bool quantizeFp8 = false)
    {
        device ??= CPU;
        if (!System.IO.Directory.Exists(directory) && ModelPresets.IsPreset(directory))
            return LoadPreset(directory, dtype, device, tensorParallelSize: tensorParallelSize, hfOverrides: hfOverrides, lmHead: lmHead);
        config ??= ModelConfig.Load(directory, hfOverrides);
        ModelShard.Check(config, tensorParallelSize);
        var generation = GenerationConfig.Load(directory);
        using var checkpoint = SafetensorsCheckpoint.Open(directory);
        return Build(directory, config, generation, CheckpointWeights(checkpoint, config, dtype, device, lmHead, quantizeFp8), device, tensorParallelSize, progress);
    }

    /// The config Load would read for a checkpoint folder or a preset name, with the overrides applied: for what must
    /// be decided before loading (the runner, the pooler).
    public static ModelConfig ReadConfig(string model, HfOverrides? hfOverrides = null)
    {
        if (System.IO.Directory.Exists(model) || !ModelPresets.IsPreset(model)) return ModelConfig.Load(model, hfOverrides);
        var preset = ModelPresets.Get(model);
        return hfOverrides?.ApplyTo(preset) ?? preset;
    }

    /// The architecture's tensors, without the LM head's when the model is built without one (a classifier made from
    /// the LM head's rows keeps them).
    static IReadOnlyList<WeightBinding> Bindings(ModelConfig config, bool lmHead) =>
        ArchitectureRegistry.For(config).Layout(config)
            .Where(b => lmHead || config.ClassifierFromToken.Count > 0 || !b.ParameterName.StartsWith("lm_head.", StringComparison.Ordinal)).ToArray();

    /// The decoder of a checkpoint folder on one device with its weights (frozen), checked as Load checks it: what
    /// training continues from (in float32: in a 16-bit dtype on a GPU of FP8 products, an FP8 checkpoint's projections
    /// load as FP8, as Load's do).
    internal static CausalLM LoadDecoder(string directory, string dtype, Device device)
    {
        var config = ModelConfig.Load(directory);
        if (config.IsClassifier)
            throw new ModelLoadException($"{directory} is a sequence classifier ({config.Architecture}): it has no LM head to train or report on");
        using var checkpoint = SafetensorsCheckpoint.Open(directory);
        return LoadShard(ModelShard.Whole(config), CheckpointWeights(checkpoint, config, dtype, device), device, progress: null);
    }

    // checks every tensor of the layout (presence, shape, dtype), then: how a rank fills its weights from the checkpoint
    static WeightPlan CheckpointWeights(SafetensorsCheckpoint checkpoint, ModelConfig config, string dtype, Device device, bool lmHead = true,
        bool quantizeFp8 = false)
    {
        var bindings = Bindings(config, lmHead);
        CheckpointLayout.Validate(checkpoint, bindings, config.Quantization);
        var stored = checkpoint.Info(bindings[0].CheckpointName).DType;
        var modelDtype = ModelDtype.Resolve(dtype, config, stored, device);
        // the scales an FP8 checkpoint stored its projections with, kept where FP8 products can serve them as stored;
        // its projections (or, quantizeFp8, a 16-bit checkpoint's) made FP8 there as they load, one at a time (the
        // 16-bit model may not fit where the FP8 one does)
        var servesFp8 = Cuda.Fp8Products.Unsupported(device, modelDtype) is null;
        var online = quantizeFp8 && config.Quantization is null;
        var fp8AsLoaded = servesFp8 && (online || config.Quantization is { StoresFp8: true });
        return new WeightPlan((model, rankProgress) =>
            {
                var fp8Scales = WeightLoader.Load(model, checkpoint, bindings, model.Shard, rankProgress, config.Quantization,
                    fp8AsLoaded ? new Fp8ProjectionsAsLoaded(model, online) : null, keepFp8Scales: servesFp8);
                model.KeepCheckpointFp8Scales(fp8Scales);
            },
            modelDtype, KVScales(checkpoint, config, bindings), lmHead) { ProjectionsUnallocated = fp8AsLoaded };
    }

    /// Per layer [k_scale, v_scale] when the checkpoint carries them for an FP8 KV cache (vLLM reads the attention
    /// module's k_scale / v_scale, or the older k_proj.output_scale / v_proj.output_scale); null otherwise. The attention
    /// module is named as the checkpoint names it: where the layout finds its q (or fused qkv) projection
    /// (model.layers.N.self_attn., EXAONE's transformer.h.N.attn.attention.).
    static float[,]? KVScales(SafetensorsCheckpoint checkpoint, ModelConfig config, IReadOnlyList<WeightBinding> bindings)
    {
        string Attention(int layer) =>
            bindings.FirstOrDefault(b => b.ParameterName == $"layers.{layer}.self_attn.qkv_proj.weight")?.CheckpointName is { } projection
                ? projection[..(projection[..^".weight".Length].LastIndexOf('.') + 1)]
                : $"model.layers.{layer}.self_attn.";
        string[] Names(int layer, char kv) => [$"{Attention(layer)}{kv}_scale", $"{Attention(layer)}{kv}_proj.output_scale"];
        if (!Names(0, 'k').Any(checkpoint.Contains)) return null;
        var scales = new float[config.NumHiddenLayers, 2];
        for (var layer = 0; layer < config.NumHiddenLayers; layer++)
            for (var (kv, column) = ('k', 0); column < 2; (kv, column) = ('v', column + 1))
            {
                var name = Names(layer, kv).FirstOrDefault(checkpoint.Contains)
                    ?? throw new CheckpointException($"the checkpoint has KV cache scales but none for layer {layer}'s {kv} ({Names(layer, kv)[0]})");
                using var tensor = checkpoint.Read(name);
                scales[layer, column] = tensor.to_type(ScalarType.Float32).max().item<float>();
            }
        return scales;
    }

    /// A preset shape (ModelPresets) with random weights made on the device (on each rank's, under tensor parallelism):
    /// no files, real sizes; the same model at every tensor-parallel size.
    public static LoadedModel LoadPreset(string name, string dtype = "auto", Device? device = null, long seed = 0,
        int tensorParallelSize = 1, HfOverrides? hfOverrides = null, bool lmHead = true)
    {
        device ??= CPU;
        var preset = ModelPresets.Get(name);
        var config = hfOverrides?.ApplyTo(preset) ?? preset;
        ModelShard.Check(config, tensorParallelSize);
        var bindings = Bindings(config, lmHead);
        var weights = new WeightPlan((model, _) => RandomWeights.Fill(model, bindings, seed),
            ModelDtype.Resolve(dtype, config, ScalarType.Float32, device), KVScales: null, lmHead);
        return Build(name, config, GenerationConfig.Empty, weights, device, tensorParallelSize, progress: null);
    }

    /// How a rank's model gets its weights (a checkpoint's slices, or random values), the dtype they are kept in, and an
    /// FP8 KV cache's scales (one per layer's K and V, the same on every rank), and whether the model has an LM head.
    /// ProjectionsUnallocated: the model is made with its projections unallocated, for Fill to allocate one at a time.
    sealed record WeightPlan(Action<CausalLM, IProgress<WeightLoadProgress>?> Fill, ScalarType Dtype, float[,]? KVScales, bool LmHead = true)
    {
        public bool ProjectionsUnallocated { get; init; }
    }

    static LoadedModel Build(string directory, ModelConfig config, GenerationConfig generation, WeightPlan weights, Device device,
        int size, IProgress<WeightLoadProgress>? progress)
    {
        if (size == 1)
            return new LoadedModel(directory, LoadShard(ModelShard.Whole(config), weights, device, progress), generation)
            {
                CheckpointKVScales = weights.KVScales,
            };
        var group = TensorParallelGroup.Create(device, size);
        CausalLM? rankZero = null;
        try
        {
            var peers = PeerRanks.Load(group,
                rank => new LoadedModel(directory, LoadShard(ModelShard.Of(config, rank, size), weights, group.Devices[rank], null),
                    generation, group.Communicators[rank])
                { CheckpointKVScales = weights.KVScales },
                () => rankZero = LoadShard(ModelShard.Of(config, 0, size), weights, group.Devices[0], progress));
            return new LoadedModel(directory, rankZero!, generation, group.Communicators[0], peers) { CheckpointKVScales = weights.KVScales };
        }
        catch
        {
            rankZero?.Dispose();
            throw;
        }
    }

    static CausalLM LoadShard(ModelShard shard, WeightPlan weights, Device device, IProgress<WeightLoadProgress>? progress)
    {
        var model = new CausalLM(shard, weights.Dtype, device, weights.LmHead, weights.ProjectionsUnallocated);
        try
        {
            weights.Fill(model, progress);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }
}
