namespace Serving.Engine.Config;

/// config.json's quantization_config for the checkpoints served here, each dequantized to the model's dtype as it loads
/// (../Weights/QuantizedWeights), so the model computes as an unquantized one does: the checkpoint's format is read, its
/// memory saving is not kept.
/// - FP8 (e4m3) weights with their scales, as transformers' and vLLM's "fp8" method (Qwen's and DeepSeek's -FP8
///   releases: 128 x 128 blocks, weight_scale_inv) and "compressed-tensors" float-quantized (llm-compressor's FP8: a
///   scale per tensor, per output channel or per block, weight_scale) store them;
/// - integers packed in int32 with a scale and zero point per group of input columns: "awq" (AutoAWQ's GEMM layout,
///   4 bits) and "gptq" (AutoGPTQ's and GPTQModel's, 4 or 8 bits, act-order's g_idx, zero points stored minus one unless
///   checkpoint_format is gptq_v2);
/// - MXFP4 ("mxfp4", gpt-oss's experts): 4-bit e2m1 values in blocks of 32 with a power-of-two scale each.
/// Other methods (bitsandbytes, compressed-tensors' pack-quantized, marlin, ...) are refused naming the method.
/// Apart from these, --quantization fp8 on a checkpoint without a quantization_config stores the decoder's projections
/// as FP8 after they load (IsOnlineFp8, ../Model/LoadedModel.QuantizeWeightsToFp8), and an FP8 checkpoint's projections
/// scaled per tensor, per output channel or per 128 x 128 block become FP8 again as stored where FP8 products run
/// (LoadedModel.KeepCheckpointFp8): those keep the memory saving.
public sealed record WeightQuantization(string Method)
{
    /// Whether the checkpoint's quantized weights are FP8 (e4m3 with scales): fp8, and compressed-tensors (of which
    /// only float-quantized FP8 is read).
    public bool StoresFp8 => Method is "fp8" or "compressed-tensors";

    /// FP8: the scale blocks' [rows, columns] when the scales are per block.
    public IReadOnlyList<int>? BlockSize { get; init; }
    /// awq and gptq: bits per integer and input columns per group of scale and zero point (-1: one group).
    public int Bits { get; init; }
    public int GroupSize { get; init; }
    /// gptq's original format stores each zero point minus one.
    public bool ZeroPointsMinusOne { get; init; }

    /// vLLM's --quantization values for the methods read here: each names the checkpoint's quant_method it serves
    /// (the marlin kernels' names are vLLM's faster paths for the same awq and gptq checkpoints).
    public static readonly IReadOnlyDictionary<string, string> FlagValues = new Dictionary<string, string>
    {
        ["fp8"] = "fp8", ["compressed-tensors"] = "compressed-tensors", ["awq"] = "awq", ["awq_marlin"] = "awq",
        ["gptq"] = "gptq", ["gptq_marlin"] = "gptq", ["mxfp4"] = "mxfp4",
    };

    /// vLLM's --quantization (null: from the checkpoint) checked against the checkpoint's quantization_config: a
    /// quantized checkpoint's weights are read as it stores them, so the flag may only name that; on a checkpoint stored
    /// in 16 bits only fp8 is built (vLLM's online quantization: IsOnlineFp8). Throws naming the flag.
    public static void CheckFlag(string? flag, WeightQuantization? checkpoint)
    {
        if (flag is null) return;
        if (!FlagValues.TryGetValue(flag, out var method)) throw new ModelLoadException("--" + UnknownFlagValue(flag));
        if (checkpoint is null && flag != "fp8")
            throw new ModelLoadException($"--quantization {flag}: the checkpoint is not quantized (config.json has no quantization_config), " +
                "and of the methods only fp8 quantizes weights as they load; serve it without the flag, with --quantization fp8, or a checkpoint stored quantized");
        if (checkpoint is not null && checkpoint.Method != method)
            throw new ModelLoadException($"--quantization {flag} does not match the checkpoint's quantization_config.quant_method " +
                $"{checkpoint.Method}; leave the flag out to read the checkpoint's own");
    }

    /// Whether --quantization asks for the decoder's 16-bit weights to be quantized to FP8 as they load (fp8 on a
    /// checkpoint without a quantization_config), as vLLM does.
    public static bool IsOnlineFp8(string? flag, WeightQuantization? checkpoint) => flag == "fp8" && checkpoint is null;

    /// What is wrong with a --quantization value this server does not read (null for one it does), without the dashes.
    public static string? UnknownFlagValue(string flag) => FlagValues.ContainsKey(flag) ? null
        : $"quantization {flag} is not served (accepted: {string.Join(", ", FlagValues.Keys)}, each naming the checkpoint's own quantization_config)";

    internal static WeightQuantization? Read(JsonFields json)
    {
        if (json.Object("quantization_config") is not { } config) return null;
        var method = config.String("quant_method") ?? "(none)";
        return method switch
        {
            "fp8" => Fp8(json.File, config),
            "compressed-tensors" => CompressedTensors(json.File, config),
            "awq" => Awq(json.File, config),
            "gptq" => Gptq(json.File, config),
            "mxfp4" => new WeightQuantization("mxfp4"),
            _ => throw ModelConfigException.Unsupported(json.File, "quantization_config.quant_method", method,
                "fp8, compressed-tensors FP8 (float-quantized), awq, gptq and mxfp4, dequantized at load"),
        };
    }

    static WeightQuantization Fp8(string file, JsonFields config)
    {
        var format = config.String("fmt") ?? "e4m3";
        if (format != "e4m3") throw ModelConfigException.Unsupported(file, "quantization_config.fmt", format, "e4m3");
        var block = Block(file, config, "weight_block_size");
        return new WeightQuantization("fp8") { BlockSize = block };
    }

    /// Every group's weights must be 8-bit floats; activation settings do not matter to weights dequantized at load.
    static WeightQuantization CompressedTensors(string file, JsonFields config)
    {
        var format = config.String("format") ?? "float-quantized";
        if (format is not ("float-quantized" or "naive-quantized"))
            throw ModelConfigException.Unsupported(file, "quantization_config.format", format, "float-quantized (FP8 weights)");
        IReadOnlyList<int>? block = null;
        var groups = config.Object("config_groups")
            ?? throw new ModelConfigException($"{file}: quantization_config has no config_groups");
        foreach (var name in groups.Json.Select(entry => entry.Key).ToArray())
        {
            var weights = groups.Object(name)!.Object("weights")
                ?? throw new ModelConfigException($"{file}: quantization_config.config_groups.{name} has no weights");
            var (type, bits) = (weights.String("type") ?? "int", weights.Int("num_bits") ?? 0);
            if (type != "float" || bits != 8)
                throw ModelConfigException.Unsupported(file, $"quantization_config.config_groups.{name}.weights", $"{type} of {bits} bits",
                    "8-bit float weights (FP8)");
            block ??= Block(file, weights, "block_structure");
        }
        return new WeightQuantization("compressed-tensors") { BlockSize = block };
    }

    static WeightQuantization Awq(string file, JsonFields config)
    {
        var version = (config.String("version") ?? "gemm").ToLowerInvariant();
        if (version != "gemm") throw ModelConfigException.Unsupported(file, "quantization_config.version", version, "gemm");
        if (config.Bool("zero_point") == false)
            throw ModelConfigException.Unsupported(file, "quantization_config.zero_point", false, "true");
        return new WeightQuantization("awq") { Bits = ReadBits(file, config, "w_bit", [4]), GroupSize = ReadGroupSize(file, config, "q_group_size") };
    }

    static WeightQuantization Gptq(string file, JsonFields config)
    {
        var format = config.String("checkpoint_format") ?? "gptq";
        if (format is not ("gptq" or "gptq_v2"))
            throw ModelConfigException.Unsupported(file, "quantization_config.checkpoint_format", format, "gptq, gptq_v2");
        return new WeightQuantization("gptq")
        {
            Bits = ReadBits(file, config, null, [4, 8]), GroupSize = ReadGroupSize(file, config, null), ZeroPointsMinusOne = format == "gptq",
        };
    }

    static int ReadBits(string file, JsonFields config, string? alias, int[] supported)
    {
        var bits = config.Int("bits") ?? (alias is null ? null : config.Int(alias)) ?? 4;
        return supported.Contains(bits) ? bits
            : throw ModelConfigException.Unsupported(file, "quantization_config.bits", bits, string.Join(", ", supported));
    }

    static int ReadGroupSize(string file, JsonFields config, string? alias)
    {
        var size = config.Int("group_size") ?? (alias is null ? null : config.Int(alias)) ?? 128;
        return size == -1 || size > 0 ? size
            : throw ModelConfigException.Unsupported(file, "quantization_config.group_size", size, "a positive size, or -1 for one group");
    }

    static IReadOnlyList<int>? Block(string file, JsonFields json, string field)
    {
        if (!json.Has(field)) return null;
        var block = json.IntOrList(field);
        return block.Count == 2 && block.All(size => size > 0) ? block
            : throw new ModelConfigException($"{file}: {json.Name(field)} must be two positive sizes [rows, columns]");
    }

    public override string ToString() => Method switch
    {
        "awq" or "gptq" => $"{Method}, {Bits}-bit integers in groups of {GroupSize}",
        "mxfp4" => "mxfp4, e2m1 in blocks of 32 with power-of-two scales",
        _ when BlockSize is { } block => $"{Method}, FP8 e4m3 in {block[0]} x {block[1]} blocks",
        _ => $"{Method}, FP8 e4m3",
    };
}
