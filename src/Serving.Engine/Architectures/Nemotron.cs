using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// NemotronForCausalLM (NVIDIA's Nemotron-4 and Minitron): Llama's attention turning half of each head's dimensions
/// (partial_rotary_factor 0.5), an MLP without a gate (up_proj, relu(x)^2, down_proj), every norm a LayerNorm1P: an
/// nn.LayerNorm with a bias whose weight is stored as its offset from 1 (norm_eps); biases under attention_bias and
/// mlp_bias.
internal sealed class Nemotron : ModelArchitecture
{
    public override string Name => "NemotronForCausalLM";
    public override string ModelType => "nemotron";

    /// transformers' NemotronConfig for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode>
        {
            ["hidden_act"] = "relu2", ["norm_eps"] = 1e-5, ["max_position_embeddings"] = 4096, ["bos_token_id"] = 2, ["eos_token_id"] = 3,
        };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) =>
        Llama.WithBiases(config, json).WithLayerNorms(RmsNormWeight.OffsetBeforeRounding) with
        {
            RmsNormEps = json.Double("norm_eps")!.Value,
            GatedMlp = false,
            PartialRotaryFactor = ModelConfigReader.PartialRotaryFactor(json, config.HeadDim, fallback: 0.5),
        };

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.UngatedLayer(config, layer, "up_proj", "down_proj"));
}
