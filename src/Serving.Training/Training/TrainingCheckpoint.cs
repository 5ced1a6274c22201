using Serving.Engine.Weights;
using Serving.Training.Checkpoints;
using static TorchSharp.torch;

namespace Serving.Training.Training;

/// A run's checkpoint: a Hugging Face folder the engine serves as it is (float32 master weights, config, tokenizer),
/// plus what resuming needs: optimizer.safetensors (AdamW's moments, flat in parameter order) and
/// trainer_state.json. Written to a temporary folder and renamed into place, so a run stopped mid-save keeps its
/// previous checkpoint.
internal static class TrainingCheckpoint
{
    public const string OptimizerFile = "optimizer.safetensors";

    /// Tokenizer files copied from the tokenizer folder into every checkpoint.
    static readonly string[] TokenizerFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"];

    public static void Save(string directory, TrainingModel model, AdamW optimizer, TrainerState state, string? tokenizerDir)
    {
        var staging = directory.TrimEnd('/') + ".saving";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        CheckpointWriter.Write(model.Master, staging, ScalarType.Float32);
        foreach (var file in TokenizerFiles)
        {
            var source = tokenizerDir is null ? null : Path.Combine(tokenizerDir, file);
            if (source is not null && File.Exists(source)) File.Copy(source, Path.Combine(staging, file));
        }
        SafetensorsWriter.Write(Path.Combine(staging, OptimizerFile), new Dictionary<string, Tensor>
        {
            ["exp_avg"] = optimizer.ExpAvg,
            ["exp_avg_sq"] = optimizer.ExpAvgSq,
        }, new Dictionary<string, string> { ["step"] = optimizer.StepCount.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        state.Save(staging);
        var previous = directory.TrimEnd('/') + ".previous";
        if (Directory.Exists(previous)) Directory.Delete(previous, recursive: true);
        if (Directory.Exists(directory)) Directory.Move(directory, previous);
        Directory.Move(staging, directory);
        if (Directory.Exists(previous)) Directory.Delete(previous, recursive: true);
    }

    /// AdamW's moments and step count from a checkpoint into optimizer.
    public static void LoadOptimizer(string directory, AdamW optimizer, int step)
    {
        using var checkpoint = SafetensorsFile.Open(Path.Combine(directory, OptimizerFile));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        optimizer.ExpAvg.copy_(checkpoint.Read("exp_avg"));
        optimizer.ExpAvgSq.copy_(checkpoint.Read("exp_avg_sq"));
        optimizer.StepCount = step;
    }
}
