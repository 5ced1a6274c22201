using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// Qwen2ForCausalLM (Qwen2, Qwen2.5): Llama's layout with a bias on q, k and v (never on o); configs carry
/// sliding_window even when it is off, and only use_sliding_window turns it on (from max_window_layers on).
internal sealed class Qwen2 : ModelArchitecture
{
    public override string Name => "Qwen2ForCausalLM";
    public override string ModelType => "qwen2";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) => config with
    {
        QkvBias = true,
        LayerWindows = ModelConfigReader.QwenLayerWindows(json, config.NumHiddenLayers),
    };

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer));
}
