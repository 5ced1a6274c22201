using Serving.Engine.Config;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Loads a Hugging Face checkpoint folder (config.json, generation_config.json, safetensors) into a LoadedModel.
/// Everything is checked before the model is allocated: the config (ModelConfigException) and every tensor's
/// presence, shape and dtype (CheckpointException), each message naming the field or tensor.
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
        var bindings = CheckpointLayout.For(config);
        CheckpointLayout.Validate(checkpoint, bindings);
        var stored = checkpoint.Info(bindings[0].CheckpointName).DType;
        var model = new LlamaModel(config, ModelDtype.Resolve(dtype, config, stored, device), device);
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

    /// A preset shape (ModelPresets) with random weights made on the device: no files, real sizes (issue 6).
    public static LoadedModel LoadPreset(string name, string dtype = "auto", Device? device = null, long seed = 0)
    {
        device ??= CPU;
        var config = ModelPresets.Get(name);
        var model = new LlamaModel(config, ModelDtype.Resolve(dtype, config, ScalarType.Float32, device), device);
        RandomWeights.Fill(model, seed);
        return new LoadedModel(name, model, GenerationConfig.Empty);
    }
}
