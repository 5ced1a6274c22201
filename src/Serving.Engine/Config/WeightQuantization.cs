namespace Serving.Engine.Config;

/// config.json's quantization_config for the checkpoints served here: FP8 (e4m3) weights with their scales, as
/// transformers' and vLLM's "fp8" method (Qwen's and DeepSeek's -FP8 releases: 128 x 128 blocks, weight_scale_inv) and
/// "compressed-tensors" float-quantized (llm-compressor's FP8: a scale per tensor, per output channel or per block,
/// weight_scale) store them. The weights are dequantized to the model's dtype as they load (../Weights/Fp8Weights), so
/// the model computes as an unquantized one does: the checkpoint's format is read, its memory saving is not kept.
/// Integer formats (GPTQ, AWQ, bitsandbytes, compressed-tensors' pack-quantized) are refused naming the method.
public sealed record WeightQuantization(string Method, IReadOnlyList<int>? BlockSize)
{
    internal static WeightQuantization? Read(JsonFields json)
    {
        if (json.Object("quantization_config") is not { } config) return null;
        var method = config.String("quant_method") ?? "(none)";
        return method switch
        {
            "fp8" => Fp8(json.File, config),
            "compressed-tensors" => CompressedTensors(json.File, config),
            _ => throw ModelConfigException.Unsupported(json.File, "quantization_config.quant_method", method,
                "fp8 and compressed-tensors FP8 (float-quantized), dequantized at load; integer formats such as gptq and awq are not served"),
        };
    }

    static WeightQuantization Fp8(string file, JsonFields config)
    {
        var format = config.String("fmt") ?? "e4m3";
        if (format != "e4m3") throw ModelConfigException.Unsupported(file, "quantization_config.fmt", format, "e4m3");
        return new WeightQuantization("fp8", Block(file, config, "weight_block_size"));
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
                    "8-bit float weights (FP8); integer weights are not served");
            block ??= Block(file, weights, "block_structure");
        }
        return new WeightQuantization("compressed-tensors", block);
    }

    static IReadOnlyList<int>? Block(string file, JsonFields json, string field)
    {
        if (!json.Has(field)) return null;
        var block = json.IntOrList(field);
        return block.Count == 2 && block.All(size => size > 0) ? block
            : throw new ModelConfigException($"{file}: {json.Name(field)} must be two positive sizes [rows, columns]");
    }

    public override string ToString() => BlockSize is { } block ? $"{Method} (FP8 e4m3, {block[0]} x {block[1]} blocks)" : $"{Method} (FP8 e4m3)";
}
