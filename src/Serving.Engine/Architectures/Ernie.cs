using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// Ernie4_5ForCausalLM (ERNIE-4.5-0.3B): Llama's tensors with rotary embedding in interleaved pairs over each whole head
/// (GLM's rotate_half), every projection biased under use_bias, tied embeddings by default.
internal sealed class Ernie4_5 : ModelArchitecture
{
    public override string Name => "Ernie4_5ForCausalLM";
    public override string ModelType => "ernie4_5";

    /// transformers' Ernie4_5Config for what a config may leave out.
    public override IReadOnlyDictionary<string, JsonNode> Defaults { get; } = new Dictionary<string, JsonNode>
    {
        ["tie_word_embeddings"] = true, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 500000.0, ["use_bias"] = false,
        ["num_key_value_heads"] = 2, ["head_dim"] = 128,
    };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) => ReadErnie(config, json);

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) => LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer));

    /// What both ERNIE 4.5 families share: the interleaved rope and use_bias.
    internal static ModelConfig ReadErnie(ModelConfig config, JsonFields json)
    {
        var bias = json.Bool("use_bias")!.Value;
        return config with { InterleavedRope = true, RotaryPrecision = RotaryPrecision.Float32, QkvBias = bias, OutputBias = bias, MlpBias = bias };
    }
}

/// Ernie4_5_MoeForCausalLM (ERNIE-4.5-21B-A3B): ERNIE 4.5's attention; from moe_layer_start_index to moe_layer_end_index,
/// every moe_layer_interval-th layer routes each token to its top moe_k of moe_num_experts experts of
/// moe_intermediate_size: a float32 router (mlp.gate) whose softmax, plus a per-expert correction bias
/// (mlp.moe_statics.e_score_correction_bias), chooses them and, without it, weighs them (normalized); moe_num_shared_experts
/// shared experts run as one MLP of that many times the width, added ungated. The other layers keep a dense MLP.
internal sealed class Ernie4_5Moe : ModelArchitecture
{
    public override string Name => "Ernie4_5_MoeForCausalLM";
    public override string ModelType => "ernie4_5_moe";

    /// transformers' Ernie4_5_MoeConfig for what a config may leave out.
    public override IReadOnlyDictionary<string, JsonNode> Defaults { get; } = new Dictionary<string, JsonNode>
    {
        ["tie_word_embeddings"] = true, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 500000.0, ["use_bias"] = false,
        ["moe_intermediate_size"] = 1536, ["moe_k"] = 6, ["moe_num_experts"] = 64, ["moe_num_shared_experts"] = 2,
        ["moe_layer_start_index"] = 1, ["moe_layer_end_index"] = -1, ["moe_layer_interval"] = 1, ["num_key_value_heads"] = 4,
    };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        if (json.Bool("use_bias") == true)
            throw ModelConfigException.Unsupported(json.File, "use_bias", true, "false (the experts take no biases here)");
        var layers = config.NumHiddenLayers;
        var (start, end, interval) = (json.RequiredInt("moe_layer_start_index"), json.RequiredInt("moe_layer_end_index"), json.PositiveInt("moe_layer_interval"));
        if (end == -1) end = layers - 1;
        var width = json.PositiveInt("moe_intermediate_size");
        var read = Ernie4_5.ReadErnie(config, json) with
        {
            NumExperts = json.PositiveInt("moe_num_experts"),
            NumExpertsPerToken = json.PositiveInt("moe_k"),
            ExpertIntermediateSize = width,
            NormalizeTopKProbabilities = true,
            SharedExpertIntermediateSize = json.RequiredInt("moe_num_shared_experts") * width,
            RouterInFloat32 = true,
            ExpertChoiceBias = true,
            DenseLayers = [.. Enumerable.Range(0, layers).Where(i => (i + 1) % interval != 0 || i < start || i > end)],
        };
        ExpertLayout.Check(json.File, read);
        return read;
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer =>
        {
            if (!config.IsExpertLayer(layer)) return LlamaLayout.Layer(config, layer);
            var (mlp, to) = ($"model.layers.{layer}.mlp.", $"layers.{layer}.mlp.");
            var experts = ExpertLayout.Experts(config, layer, mlp + "gate.weight",
                e => ($"{mlp}experts.{e}.gate_proj.weight", $"{mlp}experts.{e}.up_proj.weight", $"{mlp}experts.{e}.down_proj.weight"));
            WeightBinding choiceBias = new($"{mlp}moe_statics.e_score_correction_bias", [1, config.NumExperts], $"{to}expert_choice_bias");
            IEnumerable<WeightBinding> shared = config.SharedExpertIntermediateSize > 0 ? ExpertLayout.SharedExpert(config, layer, mlp + "shared_experts.") : [];
            return ExpertLayout.Attention(config, layer).Concat(experts).Append(choiceBias).Concat(shared);
        });
}
