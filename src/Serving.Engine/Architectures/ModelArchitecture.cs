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
    public virtual string BaseModelName => Name.Replace("ForCausalLM", "Model");

    /// transformers' name of the same decoder with a classification head (`score`) instead of its LM head
    /// (LlamaForCausalLM -> LlamaForSequenceClassification); served by the pooling runner (/classify).
    public string ClassifierName => Name.Replace("ForCausalLM", "ForSequenceClassification");

    /// Whether a config.json `architectures` name is one of this family's.
    public bool Names(string architecture) => architecture == Name || architecture == BaseModelName || architecture == ClassifierName;

    /// The `model_type` of config.json; selects this class when `architectures` is absent.
    public abstract string ModelType { get; }

    /// Reads the fields in which this architecture differs from the shared ones (biases, windows, norms, rotary).
    public abstract ModelConfig ReadSpecifics(ModelConfig config, JsonFields json);

    /// transformers' defaults of this family's config class for the fields a config.json may leave out (a multimodal
    /// checkpoint's text_config lists only where it differs: gemma3); a field the file gives wins. Empty: none needed.
    public virtual IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode>();

    /// Fields this family's config.json names otherwise than the shared reader does (theirs -> the reader's name); the
    /// reader takes theirs where its own is absent. Empty: the shared names.
    public virtual IReadOnlyDictionary<string, string> FieldNames { get; } = new Dictionary<string, string>();

    /// Every checkpoint tensor a config needs, in file order, and the model parameter rows each one fills.
    public abstract IReadOnlyList<WeightBinding> Layout(ModelConfig config);
}
