using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// Starcoder2ForCausalLM (BigCode's StarCoder2): Llama's attention with a bias on q, k, v and o and an MLP without a gate
/// (c_fc, GELU's tanh approximation, c_proj) with biases, all under use_bias; every norm an nn.LayerNorm with a bias
/// (norm_epsilon); a sliding_window in every layer where the config gives one.
internal sealed class Starcoder2 : ModelArchitecture
{
    public override string Name => "Starcoder2ForCausalLM";
    public override string ModelType => "starcoder2";

    /// transformers' Starcoder2Config for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode>
        {
            ["hidden_act"] = "gelu_pytorch_tanh", ["norm_epsilon"] = 1e-5, ["use_bias"] = true, ["tie_word_embeddings"] = true,
            ["max_position_embeddings"] = 4096, ["bos_token_id"] = 50256, ["eos_token_id"] = 50256,
        };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var bias = json.Bool("use_bias")!.Value;
        return config.WithLayerNorms() with
        {
            RmsNormEps = json.Double("norm_epsilon")!.Value,
            GatedMlp = false,
            QkvBias = bias,
            OutputBias = bias,
            MlpBias = bias,
            LayerWindows = ModelConfigReader.EveryLayerWindows(json, config.NumHiddenLayers),
        };
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.UngatedLayer(config, layer, "c_fc", "c_proj"));
}
