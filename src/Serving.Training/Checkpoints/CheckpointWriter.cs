using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Engine.Architectures;
using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Training.Checkpoints;

/// Writes a decoder's weights in the Hugging Face layout the engine loads: config.json (ModelConfigWriter),
/// generation_config.json, and the architecture's checkpoint tensors (q/k/v and gate/up split out of the fused
/// parameters, by the layout that loading reads) in model.safetensors, or in shards of at most maxShardBytes with
/// model.safetensors.index.json.
internal static class CheckpointWriter
{
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// runDtype: the torch_dtype config.json names (the dtype "auto" loads it in); null: the stored dtype.
    public static void Write(CausalLM model, string directory, ScalarType dtype, long maxShardBytes = long.MaxValue, ScalarType? runDtype = null)
    {
        Directory.CreateDirectory(directory);
        var config = model.Config with { Dtype = ModelDtype.Name(runDtype ?? dtype) };
        File.WriteAllText(Path.Combine(directory, "config.json"), ModelConfigWriter.ToJson(config).ToJsonString(Indented));
        File.WriteAllText(Path.Combine(directory, "generation_config.json"), new JsonObject
        {
            ["bos_token_id"] = config.BosTokenId,
            ["eos_token_id"] = config.EosTokenIds.Count == 1 ? config.EosTokenIds[0] : new JsonArray(config.EosTokenIds.Select(id => (JsonNode)id).ToArray()),
        }.ToJsonString(Indented));
        var shards = Shards(Entries(model, dtype), maxShardBytes);
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        if (shards.Count == 1)
        {
            SafetensorsWriter.Write(Path.Combine(directory, SafetensorsCheckpoint.SingleFile), shards[0], metadata);
            return;
        }
        var weightMap = new JsonObject();
        for (var i = 0; i < shards.Count; i++)
        {
            var file = $"model-{i + 1:00000}-of-{shards.Count:00000}.safetensors";
            SafetensorsWriter.Write(Path.Combine(directory, file), shards[i], metadata);
            foreach (var entry in shards[i]) weightMap[entry.Name] = file;
        }
        File.WriteAllText(Path.Combine(directory, SafetensorsCheckpoint.IndexFile), new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = shards.Sum(s => s.Sum(Bytes)) },
            ["weight_map"] = weightMap,
        }.ToJsonString(Indented));
    }

    // each checkpoint tensor of the layout: its rows of its parameter from RowOffset (a tensor of more dimensions than
    // its parameter, GraniteMoE's stacked experts, fills as many rows as its leading dimensions multiply to), in dtype;
    // a tensor the checkpoint stores input-major (gpt-oss's experts) swapped back from the parameter's output-major rows
    static List<SafetensorsEntry> Entries(CausalLM model, ScalarType dtype)
    {
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        return ArchitectureRegistry.Layout(model.Config).Select(binding => new SafetensorsEntry(binding.CheckpointName, dtype, binding.Shape, () =>
        {
            var parameter = parameters[binding.ParameterName];
            var shape = binding.InParameterOrder(binding.Shape);
            var rows = shape.Take(shape.Length - (int)parameter.dim() + 1).Aggregate(1L, (product, size) => product * size);
            var tensor = parameter.detach().narrow(0, binding.RowOffset, rows).reshape(shape);
            return (binding.StoredInputMajor ? tensor.transpose(-1, -2) : tensor).to_type(dtype).cpu().contiguous();
        })).ToList();
    }

    // consecutive entries, a new shard whenever the next tensor would pass the limit
    static List<List<SafetensorsEntry>> Shards(List<SafetensorsEntry> entries, long maxShardBytes)
    {
        var shards = new List<List<SafetensorsEntry>> { new() };
        long bytes = 0;
        foreach (var entry in entries)
        {
            if (shards[^1].Count > 0 && bytes + Bytes(entry) > maxShardBytes)
            {
                shards.Add([]);
                bytes = 0;
            }
            shards[^1].Add(entry);
            bytes += Bytes(entry);
        }
        return shards;
    }

    static long Bytes(SafetensorsEntry entry) =>
        entry.Shape.Aggregate(1L, (product, dim) => product * dim) * SafetensorsDType.ElementSize(entry.DType);
}
