using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// MistralForCausalLM: Llama's layout without biases; sliding_window, when set, slides every layer (Mistral 7B v0.1:
/// 4096 of a 32k context).
internal sealed class Mistral : ModelArchitecture
{
    public override string Name => "MistralForCausalLM";
    public override string ModelType => "mistral";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) =>
        config with { LayerWindows = ModelConfigReader.EveryLayerWindows(json, config.NumHiddenLayers) };

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer));
}
