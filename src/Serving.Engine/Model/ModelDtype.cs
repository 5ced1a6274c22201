using Serving.Engine.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// The --dtype option: auto, float32, bfloat16, float16 (and torch's aliases float, half).
public static class ModelDtype
{
    /// auto takes the checkpoint's dtype (config.json, else the stored embeddings), except that float32 checkpoints
    /// run in bfloat16 on CUDA as vLLM does.
    public static ScalarType Resolve(string requested, ModelConfig config, ScalarType storedDtype, Device device) =>
        requested.ToLowerInvariant() switch
        {
            "auto" => Auto(config.Dtype is null ? storedDtype : Parse(config.Dtype), device),
            var name => Parse(name),
        };

    /// A dtype by name (float32, bfloat16, float16 and torch's aliases); option names the flag in the error.
    public static ScalarType Parse(string name, string option = "dtype") => name.ToLowerInvariant() switch
    {
        "float32" or "float" => ScalarType.Float32,
        "bfloat16" => ScalarType.BFloat16,
        "float16" or "half" => ScalarType.Float16,
        _ => throw new ArgumentException($"--{option} must be auto, float32, bfloat16 or float16, not '{name}'", option),
    };

    public static string Name(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        _ => dtype.ToString(),
    };

    static ScalarType Auto(ScalarType checkpoint, Device device) =>
        checkpoint == ScalarType.Float32 && device.type == DeviceType.CUDA ? ScalarType.BFloat16 : checkpoint;
}
