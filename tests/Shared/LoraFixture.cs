using System.Text.Json;
using Serving.Engine.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Tests.Shared;

/// A PEFT LoRA adapter for a fixture checkpoint, written as peft's save_pretrained writes one (adapter_config.json,
/// adapter_model.safetensors with base_model.model.model.layers.N.*.lora_A/B.weight), and the same adapter merged
/// into a copy of the checkpoint (W + scale B A): serving the base with the adapter must answer as the merged model.
public sealed class LoraFixture : IDisposable
{
    public static readonly string[] AllProjections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    LoraFixture(TempDirectory adapter, TempDirectory merged) => (Adapter, Merged) = (adapter, merged);

    /// The adapter folder (--lora-modules name=Adapter.Path).
    public TempDirectory Adapter { get; }
    /// The fixture with the adapter merged into its weights.
    public TempDirectory Merged { get; }

    /// layers: the prefix of the checkpoint's layer tensors (another family's, such as EXAONE's "transformer.h."), and
    /// projections its modules' names.
    public static LoraFixture Create(string fixture, int rank = 4, double alpha = 8, string[]? projections = null, int seed = 1,
        bool rsLora = false, string layers = "model.layers.")
    {
        projections ??= AllProjections;
        var scale = rsLora ? alpha / Math.Sqrt(rank) : alpha / rank;
        var adapter = new TempDirectory();
        var merged = TempDirectory.CopyOf(fixture);
        var weights = new Dictionary<string, Tensor>();
        using (var checkpoint = SafetensorsCheckpoint.Open(merged.Path))
            foreach (var name in checkpoint.TensorNames) weights[name] = checkpoint.Read(name);
        var generator = new TorchSharp.torch.Generator((ulong)seed);
        // the numbers the products take, held through the calls (SERV0001, SERV0002)
        using Scalar small = 0.05.ToScalar(), scaled = scale.ToScalar(), one = 1.ToScalar();
        var lora = new Dictionary<string, Tensor>();
        foreach (var name in weights.Keys.Order().ToList())
        {
            var projection = projections.FirstOrDefault(p => name.EndsWith($".{p}.weight", StringComparison.Ordinal));
            if (projection is null || !name.StartsWith(layers, StringComparison.Ordinal)) continue;
            var weight = weights[name];
            var (outFeatures, inFeatures) = (weight.size(0), weight.size(1));
            var a = randn([rank, inFeatures], generator: generator).mul(small);
            var b = randn([outFeatures, rank], generator: generator).mul(small);
            var module = name[..^".weight".Length];
            lora[$"base_model.model.{module}.lora_A.weight"] = a;
            lora[$"base_model.model.{module}.lora_B.weight"] = b;
            weights[name] = weight.to_type(ScalarType.Float32).add(matmul(b, a).mul(scaled), one).to_type(weight.dtype);   // W + scale B A
        }
        SafetensorsWriter.Write(Path.Combine(merged.Path, SafetensorsCheckpoint.SingleFile), weights);
        SafetensorsWriter.Write(adapter.File("adapter_model.safetensors"), lora);
        File.WriteAllText(adapter.File("adapter_config.json"), JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["peft_type"] = "LORA", ["r"] = rank, ["lora_alpha"] = alpha, ["target_modules"] = projections, ["bias"] = "none",
            ["use_rslora"] = rsLora, ["fan_in_fan_out"] = false, ["modules_to_save"] = null, ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = fixture,
        }));
        return new LoraFixture(adapter, merged);
    }

    public void Dispose()
    {
        Adapter.Dispose();
        Merged.Dispose();
    }
}
