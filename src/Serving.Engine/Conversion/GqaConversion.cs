using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Engine.Architectures;
using Serving.Engine.Config;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Conversion;

/// How a group's single KV head is made from the group's original K (or V) heads: the GQA paper's mean-pooling
/// and its two ablations (Ainslie et al., 2023, figure 4).
public enum KVHeadInit
{
    /// The average of the group's heads (the paper's method).
    MeanPool,
    /// The group's first head.
    FirstHead,
    /// Random values with the standard deviation of the original projection, as if trained from scratch.
    Random,
}

/// MHA -> GQA conversion as in the GQA paper (Ainslie et al., 2023): the H query heads are split into G contiguous
/// groups, and each group's K and V projection rows (and biases) become one KV head. KV head j then serves query
/// heads j*H/G .. (j+1)*H/G - 1, as transformers' repeat_kv assumes. G = 1 gives MQA. A checkpoint that is already
/// GQA can be pooled further when G divides its KV heads. Which rows are K and V heads comes from the architecture's
/// layout (../Architectures), so checkpoints that store q/k/v fused (phi3) convert too.
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

    /// One KV head per group of contiguous heads of a K or V projection (weight or bias), computed in float32 and
    /// returned in the input dtype. generator: the random source of KVHeadInit.Random.
    // (numKVHeads * headDim[, hidden]) -> (numGroups * headDim[, hidden])
    public static Tensor PoolHeads(Tensor projection, int numKVHeads, int headDim, int numGroups,
        KVHeadInit init = KVHeadInit.MeanPool, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        long[] rest = projection.shape.Skip(1).ToArray();
        long[] grouped = [numGroups, numKVHeads / numGroups, headDim, .. rest];
        var heads = projection.to_type(ScalarType.Float32).reshape(grouped);             // (numGroups, heads per group, headDim[, hidden])
        var pooled = init switch
        {
            KVHeadInit.MeanPool => heads.mean([1]),
            KVHeadInit.FirstHead => heads.select(1, 0),
            _ => randn([numGroups, headDim, .. rest], generator: generator).mul_(projection.to_type(ScalarType.Float32).std()),
        };                                                                                // (numGroups, headDim[, hidden])
        return pooled.reshape([numGroups * headDim, .. rest]).to_type(projection.dtype).MoveToOuterDisposeScope();
    }

    /// A new state dict where every K and V head projection (weight and bias) is converted; other entries are the
    /// same tensors.
    public static Dictionary<string, Tensor> ConvertStateDict(IReadOnlyDictionary<string, Tensor> stateDict, ModelConfig config, int numGroups,
        KVHeadInit init = KVHeadInit.MeanPool, Generator? generator = null)
    {
        CheckGroups(config, numGroups);
        var layout = ArchitectureRegistry.Layout(config).ToDictionary(b => b.CheckpointName);
        return stateDict.ToDictionary(pair => pair.Key, pair => layout.TryGetValue(pair.Key, out var binding) && HoldsKVHeads(binding)
            ? Convert(pair.Value, binding, config, numGroups, init, generator)
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
        IProgress<WeightLoadProgress>? progress = null, KVHeadInit init = KVHeadInit.MeanPool, long seed = 0)
    {
        var config = ModelConfig.Load(sourceDirectory);
        CheckGroups(config, numGroups);
        // pooling FP8 bytes would average codes, not values
        if (config.Quantization is { } quantization)
            throw new ArgumentException($"{sourceDirectory} holds quantized weights ({quantization}); convert the unquantized checkpoint", nameof(sourceDirectory));
        // a norm over the whole K projection (olmo2) has no heads to pool, nor has one weight per K head (Command R+) a
        // pooled weight that norms the pooled head as the group's did; a multimodal config keeps its heads in text_config
        if (config.QkNorm is QkNorm.WholeProjection or QkNorm.EachHeadOwnWeight)
            throw new ArgumentException($"{config.Architecture} norms k by weights of the heads themselves ({config.QkNorm}), which pooled heads would change", nameof(sourceDirectory));
        if (JsonNode.Parse(File.ReadAllText(Path.Combine(sourceDirectory, "config.json")))?["text_config"] is not null)
            throw new ArgumentException($"{sourceDirectory} is a multimodal checkpoint; convert its text decoder saved on its own", nameof(sourceDirectory));
        System.IO.Directory.CreateDirectory(targetDirectory);
        using (var generator = new Generator((ulong)seed))
        using (var checkpoint = SafetensorsCheckpoint.Open(sourceDirectory))
            SafetensorsWriter.Write(Path.Combine(targetDirectory, SafetensorsCheckpoint.SingleFile),
                Entries(checkpoint, config, numGroups, init, generator, progress), new Dictionary<string, string> { ["format"] = "pt" });
        var configJson = JsonNode.Parse(File.ReadAllText(Path.Combine(sourceDirectory, "config.json")))!.AsObject();
        File.WriteAllText(Path.Combine(targetDirectory, "config.json"),
            ConvertConfigJson(configJson, numGroups).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (var file in CompanionFiles.Where(file => File.Exists(Path.Combine(sourceDirectory, file))))
            File.Copy(Path.Combine(sourceDirectory, file), Path.Combine(targetDirectory, file), overwrite: true);
    }

    static IReadOnlyList<SafetensorsEntry> Entries(SafetensorsCheckpoint checkpoint, ModelConfig config, int numGroups, KVHeadInit init,
        Generator generator, IProgress<WeightLoadProgress>? progress)
    {
        var layout = ArchitectureRegistry.Layout(config).ToDictionary(b => b.CheckpointName);
        var names = checkpoint.TensorNames.Order(StringComparer.Ordinal).ToArray();
        var totalBytes = names.Sum(name => checkpoint.Info(name).NumBytes);
        long doneBytes = 0;
        return names.Select((name, index) =>
        {
            var info = checkpoint.Info(name);
            var binding = layout.GetValueOrDefault(name);
            var converted = binding is not null && HoldsKVHeads(binding);
            long[] shape = converted ? [ConvertedRows(binding!, config, numGroups), .. info.Shape.Skip(1)] : info.Shape;
            return new SafetensorsEntry(name, info.DType, shape, () =>
            {
                var tensor = checkpoint.Read(name);
                var result = converted ? Convert(tensor, binding!, config, numGroups, init, generator) : tensor;
                if (converted) tensor.Dispose();
                doneBytes += info.NumBytes;
                progress?.Report(new WeightLoadProgress(name, index + 1, names.Length, doneBytes, totalBytes));
                return result;
            });
        }).ToArray();
    }

    static bool HoldsKVHeads(WeightBinding binding) => binding.Segments.Any(IsKV);

    static bool IsKV(RowSegment segment) => segment.Kind is RowKind.KeyHeads or RowKind.ValueHeads;

    static long ConvertedRows(WeightBinding binding, ModelConfig config, int numGroups) =>
        binding.Segments.Sum(s => IsKV(s) ? s.Rows / config.NumKeyValueHeads * numGroups : s.Rows);

    // the tensor's segments in order, its K and V head segments converted
    static Tensor Convert(Tensor tensor, WeightBinding binding, ModelConfig config, int numGroups, KVHeadInit init, Generator? generator)
    {
        using var scope = NewDisposeScope();
        var parts = binding.Segments.Select(s =>
        {
            var rows = tensor.narrow(0, s.Start, s.Rows);
            return IsKV(s) ? PoolHeads(rows, config.NumKeyValueHeads, config.HeadDim, numGroups, init, generator) : rows;
        }).ToList();
        return (parts.Count == 1 ? parts[0] : cat(parts)).contiguous().MoveToOuterDisposeScope();
    }
}
