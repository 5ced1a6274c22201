using Serving.Engine.Config;

namespace Serving.Engine.Architectures;

/// The architectures the engine serves, keyed on config.json's `architectures` (then `model_type`), as vLLM's
/// ModelRegistry is. Adding one is a file in this folder and a line here.
public static class ArchitectureRegistry
{
    static readonly ModelArchitecture[] All = [new Llama(), new Mistral(), new Qwen2(), new Qwen3(), new Phi3(), new Gemma1(), new Gemma2(), new Gemma3(), new Mixtral(), new Qwen3Moe(), new Qwen2Moe(), new Granite(), new GraniteMoe(), new GraniteMoeShared(), new Phimoe(), new Olmoe(), new SmolLM3(), new Olmo2(), new Olmo3(), new Exaone(), new Exaone4(), new SeedOss(), new HunyuanDense(), new Apertus(), new Starcoder2(), new Nemotron(), new Arcee(), new Glm(), new Glm4(), new Cohere(), new Cohere2(), new GptOss(), new Ernie4_5(), new Ernie4_5Moe()];

    public static IReadOnlyList<string> Names { get; } = All.Select(a => a.Name).ToArray();

    /// Whether an `architectures` name is a registered family's transformers base model (LlamaModel, Qwen3Model, ...):
    /// the decoder without its LM head, as embedding models are published.
    public static bool IsBaseModel(string architecture) => All.Any(a => a.BaseModelName == architecture);

    /// Whether an `architectures` name is a registered family's sequence classifier (Qwen2ForSequenceClassification,
    /// ...): the decoder with a `score` head of one row per label.
    public static bool IsClassifier(string architecture) => All.Any(a => a.ClassifierName == architecture);

    /// Multimodal checkpoints whose text decoder is served (text in, text out; their vision tower is not loaded): the
    /// decoder's architecture and model_type. Its config is config.json's text_config, or the top level where the text
    /// fields live there (Qwen2-VL, Qwen2.5-VL as first saved).
    /// TextModelTypes: the model_type values its text config may carry (another decoder inside is refused, not misread).
    static readonly Dictionary<string, (string Architecture, string ModelType, string[] TextModelTypes)> TextDecoders = new()
    {
        ["Gemma3ForConditionalGeneration"] = ("Gemma3ForCausalLM", "gemma3_text", ["gemma3_text"]),
        ["Qwen2VLForConditionalGeneration"] = ("Qwen2ForCausalLM", "qwen2", ["qwen2_vl", "qwen2_vl_text"]),
        ["Qwen2_5_VLForConditionalGeneration"] = ("Qwen2ForCausalLM", "qwen2", ["qwen2_5_vl", "qwen2_5_vl_text"]),
        ["Qwen3VLForConditionalGeneration"] = ("Qwen3ForCausalLM", "qwen3", ["qwen3_vl", "qwen3_vl_text"]),
        ["Mistral3ForConditionalGeneration"] = ("MistralForCausalLM", "mistral", ["mistral"]),
    };

    /// For a multimodal checkpoint (TextDecoders): its text config named as its text decoder, with what the top level
    /// says for the whole checkpoint (dtype, quantization, EOS) where the text config does not; any other config as it is.
    /// Qwen's multimodal rope (mrope: the sections of each head turned by a temporal, a height and a width position) is
    /// the plain rope of its theta for text, whose three positions are one: it is read as that.
    internal static JsonFields TextDecoderOf(JsonFields json)
    {
        var architectures = json.StringList("architectures");
        if (architectures.Count == 0 || !TextDecoders.TryGetValue(architectures[0], out var decoder)) return json;
        var config = (System.Text.Json.Nodes.JsonObject)(json.Object("text_config")?.Json ?? json.Json).DeepClone();
        var textType = config["model_type"]?.GetValue<string>();
        if (textType is not null && !decoder.TextModelTypes.Contains(textType))
            throw ModelConfigException.Unsupported(json.File, "text_config.model_type", textType,
                $"{string.Join(", ", decoder.TextModelTypes)} for {architectures[0]}");
        config.Remove("vision_config");
        config.Remove("text_config");
        config["architectures"] = new System.Text.Json.Nodes.JsonArray(decoder.Architecture);
        config["model_type"] = decoder.ModelType;
        foreach (var field in new[] { "torch_dtype", "dtype", "quantization_config", "eos_token_id", "bos_token_id", "pad_token_id" })
            if (config[field] is null && json.Json[field] is { } value) config[field] = value.DeepClone();
        // mrope's sections name no rope of their own: its type (yarn on Qwen2.5-VL's long context) stays, "mrope" is the default
        foreach (var field in new[] { "rope_scaling", "rope_parameters" })
            if (config[field] is System.Text.Json.Nodes.JsonObject rope && rope.ContainsKey("mrope_section"))
            {
                rope.Remove("mrope_section");
                rope.Remove("mrope_interleaved");
                foreach (var typeField in new[] { "type", "rope_type" })
                    if (rope[typeField]?.GetValue<string>() == "mrope") rope[typeField] = "default";
            }
        return new JsonFields(config, json.File);
    }

    /// The checkpoint tensors a config needs, in file order, and the parameters they fill (its architecture's layout):
    /// what loading checks, `init` writes and conversion rewrites.
    public static IReadOnlyList<Weights.WeightBinding> Layout(ModelConfig config) => For(config).Layout(config);

    /// The architecture of a config.json; a ModelConfigException names the field and lists what is supported.
    internal static ModelArchitecture Find(JsonFields json)
    {
        var architectures = json.StringList("architectures");
        var modelType = json.String("model_type");
        if (architectures.Count == 0)
            return All.FirstOrDefault(a => a.ModelType == modelType)
                ?? throw ModelConfigException.Unsupported(json.File, "model_type", modelType, string.Join(", ", All.Select(a => a.ModelType)));
        var architecture = All.FirstOrDefault(a => a.Names(architectures[0]))
            ?? throw ModelConfigException.Unsupported(json.File, "architectures", architectures[0], string.Join(", ", Names));
        // a model_type that names another family means the config is not what its architecture reads
        if (modelType is not null && modelType != architecture.ModelType)
            throw ModelConfigException.Unsupported(json.File, "model_type", modelType, $"{architecture.ModelType} for {architecture.Name}");
        return architecture;
    }

    /// The architecture of a config already read (ModelConfig.Architecture names it).
    internal static ModelArchitecture For(ModelConfig config) =>
        All.FirstOrDefault(a => a.Names(config.Architecture) || a.ModelType == config.Architecture)
        ?? throw new ModelConfigException($"unsupported architecture '{config.Architecture}' (supported: {string.Join(", ", Names)})");
}
