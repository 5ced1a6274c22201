using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// ApertusForCausalLM (the Swiss AI Initiative's Apertus): Llama's attention with qwen3's q/k norms per head before the
/// rotary embedding, an MLP without a gate whose activation is xIELU with parameters learned per layer
/// (mlp.act_fn.alpha_p, alpha_n, beta, eps; MlpActivation.Xielu), and the pre-norms named attention_layernorm and
/// feedforward_layernorm. Without rope_scaling or rope_parameters the rope is ApertusConfig's llama3 scaling.
internal sealed class Apertus : ModelArchitecture
{
    public override string Name => "ApertusForCausalLM";
    public override string ModelType => "apertus";

    /// transformers' ApertusConfig for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode>
        {
            ["hidden_act"] = "xielu", ["rms_norm_eps"] = 1e-5, ["max_position_embeddings"] = 65536, ["rope_theta"] = 12000000.0,
            ["bos_token_id"] = 1, ["eos_token_id"] = 2,
        };

    /// ApertusConfig's rope, for a config that gives neither rope_scaling nor transformers 5's rope_parameters.
    static readonly RopeConfig DefaultRope = new()
    {
        Type = RopeType.Llama3, Factor = 8.0, LowFreqFactor = 1.0, HighFreqFactor = 4.0, OriginalMaxPositionEmbeddings = 8192,
    };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var attentionBias = json.Bool("attention_bias") ?? false;
        return config with
        {
            QkNorm = QkNorm.EachHead,
            GatedMlp = false,
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            Rope = json.Has("rope_scaling") || json.Has("rope_parameters") ? config.Rope : DefaultRope with { Theta = config.Rope.Theta },
        };
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) => LlamaLayout.Model(config, layer => Layer(config, layer));

    /// Llama's attention projections, the q/k norms, the ungated MLP with its activation's parameters, the two pre-norms.
    static IEnumerable<WeightBinding> Layer(ModelConfig config, int layer)
    {
        var (from, to) = ($"model.layers.{layer}.", $"layers.{layer}.");
        var (hidden, inter) = ((long)config.HiddenSize, (long)config.IntermediateSize);
        return LlamaLayout.Layer(config, layer).Where(b => b.CheckpointName.Contains(".self_attn.", StringComparison.Ordinal))
            .Concat(LlamaLayout.HeadNorms(config, layer))
            .Concat(
            [
                new($"{from}mlp.up_proj.weight", [inter, hidden], $"{to}mlp.up_proj.weight", 0, RowKind.Up),
                new($"{from}mlp.down_proj.weight", [hidden, inter], $"{to}mlp.down_proj.weight"),
                .. new[] { "alpha_p", "alpha_n", "beta", "eps" }.Select(p => new WeightBinding($"{from}mlp.act_fn.{p}", [1], $"{to}mlp.act_fn.{p}")),
                new($"{from}attention_layernorm.weight", [hidden], $"{to}input_layernorm.weight"),
                new($"{from}feedforward_layernorm.weight", [hidden], $"{to}post_attention_layernorm.weight"),
            ]);
    }
}
