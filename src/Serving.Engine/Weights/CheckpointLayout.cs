using Serving.Engine.Config;
using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// Where one checkpoint tensor goes: rows RowOffset .. RowOffset + Shape[0] of a model parameter.
/// Several tensors share a parameter when projections are fused (q/k/v into qkv_proj, gate/up into gate_up_proj).
internal sealed record WeightBinding(string CheckpointName, long[] Shape, string ParameterName, long RowOffset);

/// The tensors a Hugging Face Llama-family checkpoint must hold for a config, and the parameters they fill.
internal static class CheckpointLayout
{
    public static IReadOnlyList<WeightBinding> For(ModelConfig config)
    {
        var bindings = new List<WeightBinding>
        {
            new("model.embed_tokens.weight", [config.VocabSize, config.HiddenSize], "embed_tokens.weight", 0),
        };
        for (var layer = 0; layer < config.NumHiddenLayers; layer++) bindings.AddRange(Layer(config, layer));
        bindings.Add(new("model.norm.weight", [config.HiddenSize], "norm.weight", 0));
        // tied checkpoints may still carry lm_head.weight (a copy of the embeddings); it is ignored
        if (!config.TieWordEmbeddings)
            bindings.Add(new("lm_head.weight", [config.VocabSize, config.HiddenSize], "lm_head.weight", 0));
        return bindings;
    }

    static IEnumerable<WeightBinding> Layer(ModelConfig config, int layer)
    {
        var (from, to) = ($"model.layers.{layer}.", $"layers.{layer}.");
        var (hidden, q, kv, inter) = ((long)config.HiddenSize, (long)config.QSize, (long)config.KVSize, (long)config.IntermediateSize);
        (string Name, long Rows, long Offset)[] qkv = [("q_proj", q, 0), ("k_proj", kv, q), ("v_proj", kv, q + kv)];
        foreach (var (name, rows, offset) in qkv)
        {
            yield return new($"{from}self_attn.{name}.weight", [rows, hidden], $"{to}self_attn.qkv_proj.weight", offset);
            if (config.QkvBias) yield return new($"{from}self_attn.{name}.bias", [rows], $"{to}self_attn.qkv_proj.bias", offset);
        }
        yield return new($"{from}self_attn.o_proj.weight", [hidden, q], $"{to}self_attn.o_proj.weight", 0);
        if (config.OutputBias) yield return new($"{from}self_attn.o_proj.bias", [hidden], $"{to}self_attn.o_proj.bias", 0);
        (string Name, long Offset)[] gateUp = [("gate_proj", 0), ("up_proj", inter)];
        foreach (var (name, offset) in gateUp)
        {
            yield return new($"{from}mlp.{name}.weight", [inter, hidden], $"{to}mlp.gate_up_proj.weight", offset);
            if (config.MlpBias) yield return new($"{from}mlp.{name}.bias", [inter], $"{to}mlp.gate_up_proj.bias", offset);
        }
        yield return new($"{from}mlp.down_proj.weight", [hidden, inter], $"{to}mlp.down_proj.weight", 0);
        if (config.MlpBias) yield return new($"{from}mlp.down_proj.bias", [hidden], $"{to}mlp.down_proj.bias", 0);
        yield return new($"{from}input_layernorm.weight", [hidden], $"{to}input_layernorm.weight", 0);
        yield return new($"{from}post_attention_layernorm.weight", [hidden], $"{to}post_attention_layernorm.weight", 0);
    }

    /// Every bound tensor exists with the expected shape and a floating-point dtype; otherwise a CheckpointException
    /// naming the tensor (checked before any memory is allocated for the model).
    public static void Validate(SafetensorsCheckpoint checkpoint, IReadOnlyList<WeightBinding> bindings)
    {
        foreach (var binding in bindings)
        {
            if (!checkpoint.Contains(binding.CheckpointName))
                throw new CheckpointException(
                    $"missing weight '{binding.CheckpointName}' (expected shape {SafetensorsTensorInfo.FormatShape(binding.Shape)}) in {checkpoint.Directory}");
            var info = checkpoint.Info(binding.CheckpointName);
            if (!info.Shape.SequenceEqual(binding.Shape))
                throw new CheckpointException(
                    $"weight '{binding.CheckpointName}' has shape {info.ShapeText}, expected {SafetensorsTensorInfo.FormatShape(binding.Shape)} from config.json");
            if (info.DType is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
                throw new CheckpointException(
                    $"weight '{binding.CheckpointName}' is stored as {SafetensorsDType.Name(info.DType)}; only F32, F16 and BF16 are supported");
        }
    }
}
