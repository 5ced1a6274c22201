using Serving.Engine.Architectures;
using Serving.Engine.Config;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Loads a Hugging Face checkpoint folder (config.json, generation_config.json, safetensors) into a LoadedModel.
/// Everything is checked before the model is allocated: the config (ModelConfigException, naming the field; an
/// unsupported architecture lists the supported ones) and every tensor's presence, shape and dtype against the
/// architecture's layout (CheckpointException, naming the tensor).
public static class ModelLoader
{
    public static LoadedModel Load(string directory, string dtype = "auto", Device? device = null,
        IProgress<WeightLoadProgress>? progress = null)
    {
        device ??= CPU;
        if (!System.IO.Directory.Exists(directory) && ModelPresets.IsPreset(directory)) return LoadPreset(directory, dtype, device);
        var config = ModelConfig.Load(directory);
        var generation = GenerationConfig.Load(directory);
        using var checkpoint = SafetensorsCheckpoint.Open(directory);
        var bindings = ArchitectureRegistry.For(config).Layout(config);
        CheckpointLayout.Validate(checkpoint, bindings);
        var stored = checkpoint.Info(bindings[0].CheckpointName).DType;
        var model = new CausalLM(config, ModelDtype.Resolve(dtype, config, stored, device), device);
        try
        {
            WeightLoader.Load(model, checkpoint, bindings, progress);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return new LoadedModel(directory, model, generation) { CheckpointKVScales = KVScales(checkpoint, config) };
    }

    /// Per layer [k_scale, v_scale] when the checkpoint carries them for an FP8 KV cache (vLLM reads
    /// self_attn.k_scale / v_scale, or the older self_attn.k_proj.output_scale / v_proj.output_scale); null otherwise.
    static float[,]? KVScales(SafetensorsCheckpoint checkpoint, ModelConfig config)
    {
        string[] Names(int layer, char kv) =>
            [$"model.layers.{layer}.self_attn.{kv}_scale", $"model.layers.{layer}.self_attn.{kv}_proj.output_scale"];
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

    /// A preset shape (ModelPresets) with random weights made on the device: no files, real sizes.
    public static LoadedModel LoadPreset(string name, string dtype = "auto", Device? device = null, long seed = 0)
    {
        device ??= CPU;
        var config = ModelPresets.Get(name);
        var model = new CausalLM(config, ModelDtype.Resolve(dtype, config, ScalarType.Float32, device), device);
        RandomWeights.Fill(model, seed);
        return new LoadedModel(name, model, GenerationConfig.Empty);
    }
}
