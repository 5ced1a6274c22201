using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// LlamaForCausalLM (Llama 2 and 3, and the many checkpoints that reuse it): attention_bias puts a bias on q, k, v
/// and o; mlp_bias on the MLP.
internal sealed class Llama : ModelArchitecture
{
    public override string Name => "LlamaForCausalLM";
    public override string ModelType => "llama";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var attentionBias = json.Bool("attention_bias") ?? false;
        return config with { QkvBias = attentionBias, OutputBias = attentionBias, MlpBias = json.Bool("mlp_bias") ?? false };
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer));
}
