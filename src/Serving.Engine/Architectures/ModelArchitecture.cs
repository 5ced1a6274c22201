using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// One checkpoint family, as the registry knows it: the config.json fields in which it differs from the others and
/// the names and layout of its tensors. Every architecture here runs the same decoder (../Model/CausalLM.cs): a
/// Llama-style pre-norm block whose optional parts (biases, q/k norm, partial rotary) the config switches on.
internal abstract class ModelArchitecture
{
    /// The `architectures` entry of config.json that selects this class (transformers' class name).
    public abstract string Name { get; }

    /// transformers' name of the same decoder without its LM head (LlamaForCausalLM -> LlamaModel): what embedding
    /// checkpoints name; served by the pooling runner.
    public string BaseModelName => Name.Replace("ForCausalLM", "Model");

    /// The `model_type` of config.json; selects this class when `architectures` is absent.
    public abstract string ModelType { get; }

    /// Reads the fields in which this architecture differs from the shared ones (biases, windows, norms, rotary).
    public abstract ModelConfig ReadSpecifics(ModelConfig config, JsonFields json);

    /// Every checkpoint tensor a config needs, in file order, and the model parameter rows each one fills.
    public abstract IReadOnlyList<WeightBinding> Layout(ModelConfig config);
}
