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
        return new LoadedModel(directory, model, generation);
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
