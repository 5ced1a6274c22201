using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// MistralForCausalLM: Llama's layout without biases; sliding_window, when set, is always in effect.
internal sealed class Mistral : ModelArchitecture
{
    public override string Name => "MistralForCausalLM";
    public override string ModelType => "mistral";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) =>
        config with { SlidingWindow = ModelConfigReader.SlidingWindow(json, inEffect: true) };

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer));
}
