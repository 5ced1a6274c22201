using Serving.Engine.Architectures;

namespace Serving.Engine.Config;

/// Maps config.json fields onto ModelConfig with transformers' defaults, refusing what we do not support.
/// The fields every architecture shares are read here; the architecture (found in the registry from
/// `architectures` or `model_type`) reads the ones in which it differs.
internal static class ModelConfigReader
{
    public static ModelConfig Read(JsonFields json)
    {
        json = ArchitectureRegistry.TextDecoderOf(json);
        var architecture = ArchitectureRegistry.Find(json);
        json = WithDefaults(WithSharedNames(json, architecture), architecture);
        RefuseUnsupported(json);
        var hidden = json.PositiveInt("hidden_size");
        var heads = json.PositiveInt("num_attention_heads");
        var kvHeads = json.Has("num_key_value_heads") ? json.PositiveInt("num_key_value_heads") : heads;
        var headDim = json.Has("head_dim") ? json.PositiveInt("head_dim") : DefaultHeadDim(json, hidden, heads);
        CheckHeads(json, heads, kvHeads, headDim);
        var config = new ModelConfig
        {
            ModelType = json.String("model_type") ?? architecture.ModelType,
            Architectures = json.StringList("architectures"),
            HiddenSize = hidden,
            IntermediateSize = json.PositiveInt("intermediate_size"),
            NumHiddenLayers = json.PositiveInt("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = json.PositiveInt("vocab_size"),
            RmsNormEps = json.Double("rms_norm_eps") ?? 1e-6,
            Rope = RopeConfig.Read(json),
            MaxPositionEmbeddings = json.Has("max_position_embeddings") ? json.PositiveInt("max_position_embeddings") : 2048,
            TieWordEmbeddings = json.Bool("tie_word_embeddings") ?? false,
            IsCausal = json.Bool("is_causal") ?? true,
            Dtype = ReadDtype(json),
            BosTokenId = json.Int("bos_token_id"),
            EosTokenIds = json.IntOrList("eos_token_id"),
            IsMatryoshka = json.Bool("is_matryoshka") ?? false,
            MatryoshkaDimensions = json.Has("matryoshka_dimensions") ? json.IntOrList("matryoshka_dimensions") : [],
            ProblemType = ProblemType(json),
            ScoreActivationIsIdentity = ScoreActivationIsIdentity(json),
            Quantization = WeightQuantization.Read(json),
            Activation = Activation(json),
        };
        if (ArchitectureRegistry.IsClassifier(config.Architecture))
            config = Classifier(json, config);
        return CheckMlp(json, CheckRope(json, architecture.ReadSpecifics(config, json)));
    }

    // longrope divides each of the rotary dimension's frequencies by a factor of its own
    static ModelConfig CheckRope(JsonFields json, ModelConfig config)
    {
        var (rope, half) = (config.Rope, config.RotaryDim / 2);
        if (rope.Type == RopeType.LongRope && (rope.ShortFactor.Count != half || rope.LongFactor.Count != half))
            throw new ModelConfigException($"{json.File}: longrope's short_factor and long_factor need {half} factors each (the " +
                $"rotary dimension {config.RotaryDim} over 2), not {rope.ShortFactor.Count} and {rope.LongFactor.Count}");
        return config;
    }

    /// xIELU and ReLU^2 are ungated MLPs' activations (Apertus's, Nemotron's), SiLU a gated one's: a family whose MLP the other is refused.
    static ModelConfig CheckMlp(JsonFields json, ModelConfig config) => (config.GatedMlp, config.Activation) switch
    {
        (true, MlpActivation.Xielu or MlpActivation.Relu2) => throw ModelConfigException.Unsupported(json.File, "hidden_act", config.Activation,
            $"silu, gelu_pytorch_tanh for {config.Architecture}"),
        (false, MlpActivation.Silu) => throw ModelConfigException.Unsupported(json.File, "hidden_act", "silu", $"gelu_pytorch_tanh, xielu, relu2 for {config.Architecture}"),
        _ => config,
    };

    static void RefuseUnsupported(JsonFields json) => Activation(json);

    /// The config with its family's own field names (ModelArchitecture.FieldNames) copied to the shared ones it lacks.
    static JsonFields WithSharedNames(JsonFields json, ModelArchitecture architecture)
    {
        var renamed = architecture.FieldNames.Where(n => json.Json.ContainsKey(n.Key) && !json.Json.ContainsKey(n.Value)).ToList();
        if (renamed.Count == 0) return json;
        var named = (System.Text.Json.Nodes.JsonObject)json.Json.DeepClone();
        foreach (var (theirs, shared) in renamed) named[shared] = named[theirs]!.DeepClone();
        return new JsonFields(named, json.File);
    }

    /// The config with its family's defaults (ModelArchitecture.Defaults) under the fields it leaves out; a field written
    /// null stays null, as transformers' config classes take it (EXAONE 4.0-1.2B's "sliding_window": null: no window).
    static JsonFields WithDefaults(JsonFields json, ModelArchitecture architecture)
    {
        var missing = architecture.Defaults.Where(d => !json.Json.ContainsKey(d.Key)).ToList();
        if (missing.Count == 0) return json;
        var filled = (System.Text.Json.Nodes.JsonObject)json.Json.DeepClone();
        foreach (var (field, value) in missing) filled[field] = value.DeepClone();
        return new JsonFields(filled, json.File);
    }

    /// hidden_activation (gemma's name) or hidden_act: SiLU, GELU's tanh approximation or xIELU.
    static MlpActivation Activation(JsonFields json)
    {
        var field = json.Has("hidden_activation") ? "hidden_activation" : "hidden_act";
        var name = json.String(field) ?? "silu";
        return name switch
        {
            "silu" or "swish" => MlpActivation.Silu,
            "gelu_pytorch_tanh" or "gelu_new" => MlpActivation.GeluTanh,
            "xielu" => MlpActivation.Xielu,
            "relu2" => MlpActivation.Relu2,
            _ => throw ModelConfigException.Unsupported(json.File, field, name, "silu, gelu_pytorch_tanh, xielu, relu2"),
        };
    }

    /// A classifier's labels, and how its head is made: its own score head, or (vLLM's classifier_from_token) the LM
    /// head's rows of some tokens, one label per token, or one for two under from_2_way_softmax.
    static ModelConfig Classifier(JsonFields json, ModelConfig config)
    {
        var tokens = json.StringList("classifier_from_token");
        if (tokens.Count == 0) return config with { Labels = Labels(json), JoinsScorePairs = !(json.Bool("use_pad_token") ?? true) };
        // is_original_qwen3_reranker forces from_2_way_softmax, as vLLM's conversion does
        var method = json.Bool("is_original_qwen3_reranker") == true ? "from_2_way_softmax" : json.String("method") ?? "no_post_processing";
        if (method is not ("from_2_way_softmax" or "no_post_processing"))
            throw ModelConfigException.Unsupported(json.File, "method", method, "from_2_way_softmax, no_post_processing");
        var twoWay = method == "from_2_way_softmax";
        if (twoWay && tokens.Count != 2)
            throw new ModelConfigException($"{json.File}: from_2_way_softmax needs two classifier_from_token tokens, not {tokens.Count}");
        var labels = twoWay ? 1 : tokens.Count;   // named as transformers names labels without id2label, as vLLM reports them
        return config with { ClassifierFromToken = tokens, ClassifierTwoWay = twoWay, JoinsScorePairs = !(json.Bool("use_pad_token") ?? false), Labels = [.. Enumerable.Range(0, labels).Select(i => $"LABEL_{i}")] };
    }

    /// A classifier's labels by id: id2label ({"0": "negative", ...}, ids 0..n-1), else num_labels LABEL_i (2 when absent,
    /// as transformers defaults).
    static IReadOnlyList<string> Labels(JsonFields json)
    {
        if (json.Json["id2label"] is System.Text.Json.Nodes.JsonObject map && map.Count > 0)
        {
            var labels = new string[map.Count];
            foreach (var (id, label) in map)
            {
                if (!int.TryParse(id, out var index) || index < 0 || index >= labels.Length || label is not System.Text.Json.Nodes.JsonValue value
                    || !value.TryGetValue(out string? name))
                    throw new ModelConfigException($"{json.File}: field 'id2label' must map the ids 0..{labels.Length - 1} to label names");
                labels[index] = name;
            }
            if (labels.Any(l => l is null))
                throw new ModelConfigException($"{json.File}: field 'id2label' must map the ids 0..{labels.Length - 1} to label names");
            return labels;
        }
        var count = json.Has("num_labels") ? json.PositiveInt("num_labels") : 2;
        return [.. Enumerable.Range(0, count).Select(i => $"LABEL_{i}")];
    }

    /// A cross-encoder's score activation as vLLM resolves it: sentence_transformers.activation_fn, else
    /// sbert_ce_default_activation_function; an Identity there scores by the raw logit, anything else (or nothing) by a
    /// sigmoid.
    static bool ScoreActivationIsIdentity(JsonFields json)
    {
        var named = json.Object("sentence_transformers")?.String("activation_fn") ?? json.String("sbert_ce_default_activation_function");
        return named?.EndsWith("Identity", StringComparison.Ordinal) == true;
    }

    static string? ProblemType(JsonFields json)
    {
        var type = json.String("problem_type");
        return type is null or "regression" or "single_label_classification" or "multi_label_classification" ? type
            : throw ModelConfigException.Unsupported(json.File, "problem_type", type, "regression, single_label_classification, multi_label_classification");
    }

    static int DefaultHeadDim(JsonFields json, int hidden, int heads) =>
        hidden % heads == 0 ? hidden / heads
            : throw new ModelConfigException($"{json.File}: field 'hidden_size' ({hidden}) is not a multiple of 'num_attention_heads' ({heads}) and 'head_dim' is absent");

    static void CheckHeads(JsonFields json, int heads, int kvHeads, int headDim)
    {
        if (heads % kvHeads != 0)
            throw new ModelConfigException($"{json.File}: field 'num_key_value_heads' ({kvHeads}) must divide 'num_attention_heads' ({heads})");
        if (headDim % 2 != 0)
            throw new ModelConfigException($"{json.File}: field 'head_dim' ({headDim}) must be even for rotary embeddings");
    }

    static string? ReadDtype(JsonFields json)
    {
        var field = json.Has("dtype") ? "dtype" : "torch_dtype";
        var dtype = json.String(field);
        return dtype is null or "float32" or "bfloat16" or "float16" ? dtype
            : throw ModelConfigException.Unsupported(json.File, field, dtype, "float32, bfloat16, float16");
    }

    /// partial_rotary_factor, or the family's default: in (0, 1], turning an even number of each head's dimensions.
    public static double PartialRotaryFactor(JsonFields json, int headDim, double fallback)
    {
        var factor = json.Double("partial_rotary_factor") ?? fallback;
        return factor > 0 && factor <= 1 && (int)(headDim * factor) % 2 == 0 ? factor
            : throw new ModelConfigException($"{json.File}: field 'partial_rotary_factor' ({factor}) must be in (0, 1] and turn an even number of the {headDim} head dimensions");
    }

    /// Per layer, sliding_window for the layers that slide, null for those that attend to everything: layer_types when
    /// given (sliding_attention / full_attention), else the family's pattern; without a window, no layer slides (gemma, gpt-oss).
    public static IReadOnlyList<int?> LayerWindows(JsonFields json, int layers, Func<int, bool> defaultSliding)
    {
        var window = json.Int("sliding_window");
        var types = json.StringList("layer_types");
        if (types.Count != 0 && types.Count != layers)
            throw new ModelConfigException($"{json.File}: layer_types lists {types.Count} layers, num_hidden_layers is {layers}");
        if (types.FirstOrDefault(t => t is not ("sliding_attention" or "full_attention")) is { } other)
            throw ModelConfigException.Unsupported(json.File, "layer_types", other, "sliding_attention, full_attention");
        if (window is <= 0) throw new ModelConfigException($"{json.File}: field 'sliding_window' must be positive, got {window}");
        return [.. Enumerable.Range(0, layers).Select(i =>
            window is { } w && (types.Count > 0 ? types[i] == "sliding_attention" : defaultSliding(i)) ? w : (int?)null)];
    }

    /// Every layer sliding under sliding_window, unless layer_types says otherwise (mistral, mixtral, phi3: their
    /// attention takes config.sliding_window in every layer); all null without a window.
    public static IReadOnlyList<int?> EveryLayerWindows(JsonFields json, int layers) => LayerWindows(json, layers, _ => true);

    /// Qwen's families (qwen2, qwen3 and their mixtures): only use_sliding_window puts sliding_window in effect (their
    /// configs carry it when it is off), then in the layers from max_window_layers on (transformers' default 28) unless
    /// layer_types says otherwise.
    public static IReadOnlyList<int?> QwenLayerWindows(JsonFields json, int layers)
    {
        if (!(json.Bool("use_sliding_window") ?? false)) return [];
        var from = json.Int("max_window_layers") ?? 28;
        return LayerWindows(json, layers, layer => layer >= from);
    }
}
