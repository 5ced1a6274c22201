using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// Qwen3ForCausalLM: Llama's layout plus an RMSNorm over each query and key head before rotary embedding
/// (q_norm, k_norm: one head_dim weight each per layer); head_dim is explicit and need not be hidden / heads.
internal sealed class Qwen3 : ModelArchitecture
{
    public override string Name => "Qwen3ForCausalLM";
    public override string ModelType => "qwen3";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var attentionBias = json.Bool("attention_bias") ?? false;
        return config with
        {
            QkNorm = QkNorm.EachHead,
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            LayerWindows = ModelConfigReader.QwenLayerWindows(json, config.NumHiddenLayers),
        };
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer).Concat(LlamaLayout.HeadNorms(config, layer)));
}
