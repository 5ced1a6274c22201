using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// LlamaForCausalLM (Llama 2 and 3, and the many checkpoints that reuse it): attention_bias puts a bias on q, k, v
/// and o; mlp_bias on the MLP.
internal sealed class Llama : ModelArchitecture
{
    public override string Name => "LlamaForCausalLM";
    public override string ModelType => "llama";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) => WithBiases(config, json);

    /// LlamaConfig's bias fields, which the families built on it read too: attention_bias on q, k, v and o, mlp_bias
    /// on the MLP (both off by default).
    public static ModelConfig WithBiases(ModelConfig config, JsonFields json)
    {
        var attentionBias = json.Bool("attention_bias") ?? false;
        return config with { QkvBias = attentionBias, OutputBias = attentionBias, MlpBias = json.Bool("mlp_bias") ?? false };
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer));
}

/// ArceeForCausalLM (Arcee's AFM): Llama's decoder with an MLP without a gate, relu(x)^2 between up_proj and down_proj
/// (transformers takes Nemotron's MLP); attention_bias on q, k, v and o, mlp_bias on the MLP.
internal sealed class Arcee : ModelArchitecture
{
    public override string Name => "ArceeForCausalLM";
    public override string ModelType => "arcee";

    /// transformers' ArceeConfig for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode>
        {
            ["hidden_act"] = "relu2", ["rms_norm_eps"] = 1e-5, ["max_position_embeddings"] = 4096, ["bos_token_id"] = 128000,
            ["eos_token_id"] = 128001,
        };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) => Llama.WithBiases(config, json) with { GatedMlp = false };

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.UngatedLayer(config, layer, "up_proj", "down_proj"));
}

/// SeedOssForCausalLM (ByteDance's Seed-OSS): Llama's decoder with a bias on q, k and v under attention_bias (on by
/// default), on o only under attention_out_bias, and on the MLP under mlp_bias.
internal sealed class SeedOss : ModelArchitecture
{
    public override string Name => "SeedOssForCausalLM";
    public override string ModelType => "seed_oss";

    /// transformers' SeedOssConfig for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode> { ["head_dim"] = 128, ["num_key_value_heads"] = 8, ["rms_norm_eps"] = 1e-6 };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) => config with
    {
        QkvBias = json.Bool("attention_bias") ?? true,
        OutputBias = json.Bool("attention_out_bias") ?? false,
        MlpBias = json.Bool("mlp_bias") ?? false,
    };

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer));
}
