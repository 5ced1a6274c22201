using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Conversion;

/// MHA -> GQA conversion as in the GQA paper (Ainslie et al., 2023): the H query heads are split into G contiguous
/// groups, and each group's K and V projection rows (and biases) are mean-pooled into one KV head. KV head j then
/// serves query heads j*H/G .. (j+1)*H/G - 1, as transformers' repeat_kv assumes. G = 1 gives MQA.
/// A checkpoint that is already GQA can be pooled further when G divides its KV heads.
public static class GqaConversion
{
    /// Tokenizer and generation files copied next to the converted weights.
    static readonly string[] CompanionFiles =
    [
        "generation_config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
        "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja",
    ];

    /// Checks that G groups can be formed from the config's KV heads; throws ArgumentException otherwise.
    public static void CheckGroups(ModelConfig config, int numGroups)
    {
        if (numGroups < 1 || config.NumKeyValueHeads % numGroups != 0)
            throw new ArgumentException(
                $"the number of groups G = {numGroups} must divide the {config.NumKeyValueHeads} key/value heads " +
                $"({config.NumAttentionHeads} query heads)", nameof(numGroups));
    }

    /// Mean-pools contiguous KV heads of a k_proj/v_proj weight or bias, in float32, back in the input dtype.
    // (numKVHeads * headDim[, hidden]) -> (numGroups * headDim[, hidden])
    public static Tensor PoolHeads(Tensor projection, int numKVHeads, int headDim, int numGroups)
    {
        using var scope = NewDisposeScope();
        long[] rest = projection.shape.Skip(1).ToArray();
        long[] grouped = [numGroups, numKVHeads / numGroups, headDim, .. rest];
        var pooled = projection.to_type(ScalarType.Float32).reshape(grouped).mean([1]);   // (numGroups, headDim[, hidden])
        return pooled.reshape([numGroups * headDim, .. rest]).to_type(projection.dtype).MoveToOuterDisposeScope();
    }

    /// A new state dict where every k_proj/v_proj weight and bias is pooled; other entries are the same tensors.
    public static Dictionary<string, Tensor> ConvertStateDict(IReadOnlyDictionary<string, Tensor> stateDict, ModelConfig config, int numGroups)
    {
        CheckGroups(config, numGroups);
        return stateDict.ToDictionary(pair => pair.Key, pair => IsKeyOrValueProjection(pair.Key)
            ? PoolHeads(pair.Value, config.NumKeyValueHeads, config.HeadDim, numGroups)
            : pair.Value);
    }

    /// config.json with num_key_value_heads = G; every other field is kept.
    public static JsonObject ConvertConfigJson(JsonObject configJson, int numGroups)
    {
        var converted = (JsonObject)configJson.DeepClone();
        converted["num_key_value_heads"] = numGroups;
        return converted;
    }

    /// Converts a checkpoint folder into targetDirectory: model.safetensors (stored dtype kept, streamed tensor by
    /// tensor), config.json, and the tokenizer/generation files.
    public static void ConvertCheckpoint(string sourceDirectory, string targetDirectory, int numGroups,
        IProgress<WeightLoadProgress>? progress = null)
    {
        var config = ModelConfig.Load(sourceDirectory);
        CheckGroups(config, numGroups);
        System.IO.Directory.CreateDirectory(targetDirectory);
        using (var checkpoint = SafetensorsCheckpoint.Open(sourceDirectory))
            SafetensorsWriter.Write(Path.Combine(targetDirectory, SafetensorsCheckpoint.SingleFile),
                Entries(checkpoint, config, numGroups, progress), new Dictionary<string, string> { ["format"] = "pt" });
        var configJson = JsonNode.Parse(File.ReadAllText(Path.Combine(sourceDirectory, "config.json")))!.AsObject();
        File.WriteAllText(Path.Combine(targetDirectory, "config.json"),
            ConvertConfigJson(configJson, numGroups).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (var file in CompanionFiles.Where(file => File.Exists(Path.Combine(sourceDirectory, file))))
            File.Copy(Path.Combine(sourceDirectory, file), Path.Combine(targetDirectory, file), overwrite: true);
    }

    static IReadOnlyList<SafetensorsEntry> Entries(SafetensorsCheckpoint checkpoint, ModelConfig config, int numGroups,
        IProgress<WeightLoadProgress>? progress)
    {
        var names = checkpoint.TensorNames.Order(StringComparer.Ordinal).ToArray();
        var totalBytes = names.Sum(name => checkpoint.Info(name).NumBytes);
        long doneBytes = 0;
        return names.Select((name, index) =>
        {
            var info = checkpoint.Info(name);
            var pooled = IsKeyOrValueProjection(name);
            long[] shape = pooled ? [info.Shape[0] / config.NumKeyValueHeads * numGroups, .. info.Shape.Skip(1)] : info.Shape;
            return new SafetensorsEntry(name, info.DType, shape, () =>
            {
                var tensor = checkpoint.Read(name);
                var result = pooled ? PoolHeads(tensor, config.NumKeyValueHeads, config.HeadDim, numGroups) : tensor;
                if (pooled) tensor.Dispose();
                doneBytes += info.NumBytes;
                progress?.Report(new WeightLoadProgress(name, index + 1, names.Length, doneBytes, totalBytes));
                return result;
            });
        }).ToArray();
    }

    static bool IsKeyOrValueProjection(string name) =>
        name.EndsWith(".self_attn.k_proj.weight", StringComparison.Ordinal) || name.EndsWith(".self_attn.k_proj.bias", StringComparison.Ordinal)
        || name.EndsWith(".self_attn.v_proj.weight", StringComparison.Ordinal) || name.EndsWith(".self_attn.v_proj.bias", StringComparison.Ordinal);
}
