using System.Text.Json;
using System.Text.RegularExpressions;
using Serving.Engine.Config;
using Serving.Engine.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model.Lora;

/// Reads a PEFT LoRA adapter folder (adapter_config.json and adapter_model.safetensors, as peft's save_pretrained
/// writes them) for a model: every lora_A / lora_B pair of the attention and MLP projections (q, k, v, o, gate, up,
/// down, or phi3's fused qkv_proj and gate_up_proj), scaled by lora_alpha / r (lora_alpha / sqrt(r) with
/// use_rslora). peft names an adapter's tensors after the modules of the checkpoint's own model, so they are found by
/// the architecture's layout (ProjectionModules): EXAONE's attn.attention.q_proj or mlp.c_fc_0 as Llama's q_proj
/// and gate_proj. What the engine cannot apply is refused naming it: DoRA, biases, modules_to_save (a new LM head or
/// embeddings), per-module ranks, embedding adapters, a rank above --max-lora-rank, shapes that do not fit the model.
internal static partial class LoraLoader
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";

    // an adapter tensor: the module's path in the checkpoint's model, and which of the pair
    [GeneratedRegex(@"^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$")]
    private static partial Regex TensorName();

    // a projection's weight in the model (CausalLM's names): its layer and parameter
    [GeneratedRegex(@"^layers\.(\d+)\.(?:self_attn|mlp)\.(qkv_proj|o_proj|gate_up_proj|up_proj|down_proj)\.weight$")]
    private static partial Regex ProjectionParameter();

    /// Every attention and MLP projection the checkpoint stores, by its module path (the tensor's name without
    /// ".weight", as peft names an adapter's tensors): its layer and Llama's name of it (q_proj, k_proj, v_proj, o_proj,
    /// gate_proj, up_proj, down_proj, or qkv_proj and gate_up_proj where the checkpoint stores them fused), read from the
    /// architecture's layout and which rows of the model's fused parameter the tensor fills.
    internal static Dictionary<string, (int Layer, string Module)> ProjectionModules(ModelConfig config)
    {
        var modules = new Dictionary<string, (int Layer, string Module)>();
        foreach (var binding in Architectures.ArchitectureRegistry.For(config).Layout(config))
        {
            var match = ProjectionParameter().Match(binding.ParameterName);
            if (!match.Success || !binding.CheckpointName.EndsWith(".weight", StringComparison.Ordinal)) continue;
            var kinds = binding.Segments.Select(segment => segment.Kind).Distinct().ToList();
            var module = kinds.Count == 1 ? kinds[0] switch
            {
                RowKind.QueryHeads => "q_proj",
                RowKind.KeyHeads => "k_proj",
                RowKind.ValueHeads => "v_proj",
                RowKind.Gate => "gate_proj",
                RowKind.Up => "up_proj",
                _ => match.Groups[2].Value,
            } : match.Groups[2].Value;
            modules[binding.CheckpointName[..^".weight".Length]] = (int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), module);
        }
        return modules;
    }

    public static LoraAdapter Load(LoraAdapterSource source, ModelConfig config, int maxRank, ScalarType dtype, Device device)
    {
        try
        {
            return Read(source, config, maxRank, dtype, device);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException
            or FormatException or OverflowException or CheckpointException)
        {
            throw Error(source, error.Message);
        }
    }

    static LoraAdapter Read(LoraAdapterSource source, ModelConfig config, int maxRank, ScalarType dtype, Device device)
    {
        var (rank, scale) = ReadConfig(source, maxRank);
        var weightsPath = System.IO.Path.Combine(source.Path, WeightsFile);
        if (!File.Exists(weightsPath))
            throw Error(source, File.Exists(System.IO.Path.Combine(source.Path, "adapter_model.bin"))
                ? $"{WeightsFile} is missing (adapter_model.bin is not read: save the adapter with safe_serialization)"
                : $"{WeightsFile} is missing");
        using var file = SafetensorsFile.Open(weightsPath);
        using var scope = NewDisposeScope();   // the checkpoint's tensors and the fusing's temporaries
        var parts = new Dictionary<(int Layer, string Module), (Tensor? A, Tensor? B)>();
        var modules = ProjectionModules(config);
        foreach (var name in file.Tensors.Keys)
        {
            var match = TensorName().Match(name);
            // an adapter of the bare decoder (peft on LlamaModel) names its modules without the causal LM's "model."
            var path = match.Groups[1].Value;
            if (!match.Success || !(modules.TryGetValue(path, out var key) || modules.TryGetValue("model." + path, out key)))
                throw Error(source, $"tensor '{name}' is not a lora_A / lora_B weight of an attention or MLP projection of this model " +
                    "(LM head, embedding and other adapters are not supported)");
            var (a, b) = parts.GetValueOrDefault(key);
            var tensor = file.Read(name).to_type(ScalarType.Float32);
            parts[key] = match.Groups[2].Value == "A" ? (tensor, b) : (a, tensor);
        }
        if (parts.Count == 0) throw Error(source, $"{WeightsFile} holds no LoRA weights");
        var weights = new Dictionary<LoraTarget, LoraWeights>();
        foreach (var group in parts.GroupBy(p => (p.Key.Layer, Projection(p.Key.Module))))
        {
            var target = new LoraTarget(group.Key.Layer, group.Key.Item2);
            weights[target] = Fuse(source, config, target, group.ToDictionary(p => p.Key.Module, p => p.Value), rank, scale);
        }
        // the adapter owns its weights (LoraAdapter.Dispose): out of every dispose scope, each moved once they all are
        foreach (var (target, (a, b)) in weights.ToList())
            weights[target] = new LoraWeights(a.to(dtype, device), b.to(dtype, device));
        foreach (var (a, b) in weights.Values)
        {
            a.DetachFromDisposeScope();
            b.DetachFromDisposeScope();
        }
        return new LoraAdapter(source, rank, weights);
    }

    /// r and the scale, after refusing what the engine cannot apply.
    static (int Rank, double Scale) ReadConfig(LoraAdapterSource source, int maxRank)
    {
        var path = System.IO.Path.Combine(source.Path, ConfigFile);
        if (!File.Exists(path)) throw Error(source, $"{ConfigFile} is missing (a PEFT adapter folder holds {ConfigFile} and {WeightsFile})");
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var json = document.RootElement;
        string? Text(string field) => json.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        bool Flag(string field) => json.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.True;
        bool Given(string field) => json.TryGetProperty(field, out var v) && v.ValueKind switch
        {
            JsonValueKind.Null or JsonValueKind.False => false,
            JsonValueKind.Array => v.GetArrayLength() > 0,
            JsonValueKind.Object => v.EnumerateObject().Any(),
            _ => true,
        };
        if (Text("peft_type") is { } type && type != "LORA") throw Error(source, $"peft_type '{type}' is not LORA");
        if (Flag("use_dora")) throw Error(source, "DoRA adapters (use_dora) are not supported");
        if (Flag("fan_in_fan_out")) throw Error(source, "fan_in_fan_out adapters (GPT-2 style Conv1D weights) are not supported");
        if (Text("bias") is { } bias && bias != "none") throw Error(source, $"bias '{bias}' is not supported (only \"none\")");
        foreach (var field in new[] { "modules_to_save", "rank_pattern", "alpha_pattern" })
            if (Given(field)) throw Error(source, $"{field} is not supported");
        if (!json.TryGetProperty("r", out var r) || !r.TryGetInt32(out var rank) || rank < 1) throw Error(source, "r must be a positive integer");
        if (rank > maxRank) throw Error(source, $"its rank r={rank} is above --max-lora-rank {maxRank}");
        var alpha = json.TryGetProperty("lora_alpha", out var a) && a.ValueKind == JsonValueKind.Number ? a.GetDouble() : 8.0;
        var scale = Flag("use_rslora") ? alpha / Math.Sqrt(rank) : alpha / rank;
        // what a float32 update can carry: a scale past it makes every output of the adapted projections infinite
        if (!double.IsFinite(scale) || Math.Abs(scale) > 1e6) throw Error(source, $"lora_alpha {alpha} gives the scale {scale}, out of range");
        return (rank, scale);
    }

    static LoraProjection Projection(string module) => module switch
    {
        "q_proj" or "k_proj" or "v_proj" or "qkv_proj" => LoraProjection.Qkv,
        "o_proj" => LoraProjection.Output,
        "gate_proj" or "up_proj" or "gate_up_proj" => LoraProjection.GateUp,
        _ => LoraProjection.Down,
    };

    /// The parts of one fused projection: each part's name, first output row, output rows, and input features.
    static (string Module, long Row, long Rows)[] Layout(ModelConfig config, LoraProjection projection) => projection switch
    {
        LoraProjection.Qkv => [("q_proj", 0, config.QSize), ("k_proj", config.QSize, config.KVSize), ("v_proj", config.QSize + config.KVSize, config.KVSize),
            ("qkv_proj", 0, config.QSize + 2L * config.KVSize)],
        LoraProjection.Output => [("o_proj", 0, config.HiddenSize)],
        LoraProjection.GateUp when !config.GatedMlp => [("up_proj", 0, config.IntermediateSize)],   // Apertus's MLP has no gate
        LoraProjection.GateUp => [("gate_proj", 0, config.IntermediateSize), ("up_proj", config.IntermediateSize, config.IntermediateSize),
            ("gate_up_proj", 0, 2L * config.IntermediateSize)],
        _ => [("down_proj", 0, config.HiddenSize)],
    };

    /// How many parts an adapter of every separate projection (q, k, v; gate, up) stacks in a fused one, and its rows.
    static (int Parts, long OutFeatures) SeparateParts(ModelConfig config, LoraProjection projection)
    {
        var parts = Layout(config, projection).Where(p => p.Module is not ("qkv_proj" or "gate_up_proj")).ToList();
        return (parts.Count, parts.Max(p => p.Row + p.Rows));
    }

    static long InFeatures(ModelConfig config, LoraProjection projection) => projection switch
    {
        LoraProjection.Output => config.QSize,
        LoraProjection.Down => config.IntermediateSize,
        _ => config.HiddenSize,
    };

    /// The parts' A and B stacked as LoraWeights describes, in float32 on the CPU.
    static LoraWeights Fuse(LoraAdapterSource source, ModelConfig config, LoraTarget target,
        IReadOnlyDictionary<string, (Tensor? A, Tensor? B)> given, int rank, double scale)
    {
        var layout = Layout(config, target.Projection);
        var inFeatures = InFeatures(config, target.Projection);
        var outFeatures = layout.Max(p => p.Row + p.Rows);
        var present = layout.Where(p => given.ContainsKey(p.Module)).ToList();
        if (present.Any(p => p.Rows == outFeatures) && present.Count > 1)
            throw Error(source, $"layer {target.Layer} has both a fused projection and its parts ({string.Join(", ", present.Select(p => p.Module))})");
        var a = zeros(present.Count * rank, inFeatures, ScalarType.Float32);
        var b = zeros(outFeatures, present.Count * rank, ScalarType.Float32);
        for (var i = 0; i < present.Count; i++)
        {
            var (module, row, rows) = present[i];
            var (partA, partB) = given[module];
            var at = $"layer {target.Layer} {module}";
            if (partA is null || partB is null) throw Error(source, $"{at} has lora_{(partA is null ? "A" : "B")} missing");
            if (!partA.shape.SequenceEqual([rank, inFeatures]) || !partB.shape.SequenceEqual([rows, rank]))
                throw Error(source, $"{at}: lora_A is [{string.Join(", ", partA.shape)}] and lora_B [{string.Join(", ", partB.shape)}]; " +
                    $"this model needs [{rank}, {inFeatures}] and [{rows}, {rank}]");
            a.narrow(0, i * rank, rank).copy_(partA);
            b.narrow(0, row, rows).narrow(1, i * rank, rank).copy_(HeldScalars.Multiply(partB, scale));
        }
        // a NaN or infinity would make every sequence of the adapter NaN (and its KV blocks with it)
        if (!a.isfinite().all().item<bool>() || !b.isfinite().all().item<bool>())
            throw Error(source, $"layer {target.Layer}'s {target.Projection} weights hold values that are not finite (NaN or infinity)");
        return new LoraWeights(a, b);
    }

    /// Device bytes of an adapter of this rank on every projection of every layer (the most one can take): what the
    /// KV cache leaves free for each adapter that may be loaded while serving.
    internal static long DeviceBytes(ModelConfig config, int rank, ScalarType dtype)
    {
        long elements = 0;
        foreach (var projection in Enum.GetValues<LoraProjection>())
        {
            var (parts, outFeatures) = SeparateParts(config, projection);
            elements += (long)parts * rank * (InFeatures(config, projection) + outFeatures);
        }
        return elements * config.NumHiddenLayers * (dtype == ScalarType.Float32 ? 4 : 2);   // float32, or a 16-bit model dtype
    }

    /// An adapter of random weights (scale 1) on every projection of every layer, for benchmarks: the shapes a PEFT
    /// adapter of this rank on q, k, v, o, gate, up and down would have once fused.
    internal static LoraAdapter Random(string name, ModelConfig config, int rank, ScalarType dtype, Device device, long seed)
    {
        using var generator = new Generator((ulong)seed);   // drawn on the CPU (a CUDA draw needs a CUDA generator), then moved
        using var scope = NewDisposeScope();
        var weights = new Dictionary<LoraTarget, LoraWeights>();
        Tensor Draw(long rows, long columns) => HeldScalars.Multiply(randn([rows, columns], generator: generator), 0.01).to(dtype, device).DetachFromDisposeScope();
        for (var layer = 0; layer < config.NumHiddenLayers; layer++)
            foreach (var projection in Enum.GetValues<LoraProjection>())
            {
                var (parts, outFeatures) = SeparateParts(config, projection);
                weights[new LoraTarget(layer, projection)] = new LoraWeights(Draw(parts * rank, InFeatures(config, projection)),
                    Draw(outFeatures, parts * rank));
            }
        return new LoraAdapter(new LoraAdapterSource(name, "(random)"), rank, weights);
    }

    static ModelLoadException Error(LoraAdapterSource source, string message) =>
        new($"LoRA adapter '{source.Name}' ({source.Path}): {message}");
}
