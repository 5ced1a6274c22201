using Serving.Engine.Config;
using Serving.Engine.Weights;
using static Serving.Engine.Weights.RowKind;

namespace Serving.Engine.Architectures;

/// Phi3ForCausalLM (Phi-3, Phi-3.5, Phi-4-mini): checkpoints store qkv_proj and gate_up_proj already fused, rotary
/// embedding may turn only part of each head (partial_rotary_factor) and long-context variants use longrope. No
/// biases; sliding_window, when set, slides every layer.
internal sealed class Phi3 : ModelArchitecture
{
    public override string Name => "Phi3ForCausalLM";
    public override string ModelType => "phi3";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        return config with
        {
            PartialRotaryFactor = ModelConfigReader.PartialRotaryFactor(json, config.HeadDim, fallback: 1.0),
            LayerWindows = ModelConfigReader.EveryLayerWindows(json, config.NumHiddenLayers),
        };
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => Layer(config, layer));

    static IEnumerable<WeightBinding> Layer(ModelConfig config, int layer)
    {
        var (from, to) = ($"model.layers.{layer}.", $"layers.{layer}.");
        var (hidden, q, kv, inter) = ((long)config.HiddenSize, (long)config.QSize, (long)config.KVSize, (long)config.IntermediateSize);
        yield return new($"{from}self_attn.qkv_proj.weight", [q + 2 * kv, hidden], $"{to}self_attn.qkv_proj.weight", 0,
            [new RowSegment(QueryHeads, 0, q), new RowSegment(KeyHeads, q, kv), new RowSegment(ValueHeads, q + kv, kv)]);
        yield return new($"{from}self_attn.o_proj.weight", [hidden, q], $"{to}self_attn.o_proj.weight");
        yield return new($"{from}mlp.gate_up_proj.weight", [2 * inter, hidden], $"{to}mlp.gate_up_proj.weight", 0,
            [new RowSegment(Gate, 0, inter), new RowSegment(Up, inter, inter)]);
        yield return new($"{from}mlp.down_proj.weight", [hidden, inter], $"{to}mlp.down_proj.weight");
        yield return new($"{from}input_layernorm.weight", [hidden], $"{to}input_layernorm.weight");
        yield return new($"{from}post_attention_layernorm.weight", [hidden], $"{to}post_attention_layernorm.weight");
    }
}
