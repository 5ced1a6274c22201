namespace Serving.Engine.Config;

/// Maps config.json fields onto ModelConfig with transformers' defaults, refusing what we do not support.
internal static class ModelConfigReader
{
    static readonly string[] SupportedModelTypes = ["llama", "mistral", "qwen2"];
    static readonly string[] SupportedArchitectures = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"];

    public static ModelConfig Read(JsonFields json)
    {
        var modelType = ReadModelType(json);
        RefuseUnsupported(json);
        var hidden = json.PositiveInt("hidden_size");
        var heads = json.PositiveInt("num_attention_heads");
        var kvHeads = json.Has("num_key_value_heads") ? json.PositiveInt("num_key_value_heads") : heads;
        var headDim = json.Has("head_dim") ? json.PositiveInt("head_dim") : DefaultHeadDim(json, hidden, heads);
        CheckHeads(json, heads, kvHeads, headDim);
        var (qkvBias, outputBias) = AttentionBiases(json, modelType);
        return new ModelConfig
        {
            ModelType = modelType,
            Architectures = ReadArchitectures(json),
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
            QkvBias = qkvBias,
            OutputBias = outputBias,
            MlpBias = modelType == "llama" && (json.Bool("mlp_bias") ?? false),
            TieWordEmbeddings = json.Bool("tie_word_embeddings") ?? false,
            Dtype = ReadDtype(json),
            BosTokenId = json.Int("bos_token_id"),
            EosTokenIds = json.IntOrList("eos_token_id"),
            SlidingWindow = ReadSlidingWindow(json, modelType),
        };
    }

    static string ReadModelType(JsonFields json)
    {
        var modelType = json.String("model_type")
            ?? throw new ModelConfigException($"{json.File}: missing required field 'model_type'");
        return SupportedModelTypes.Contains(modelType) ? modelType
            : throw ModelConfigException.Unsupported(json.File, "model_type", modelType, string.Join(", ", SupportedModelTypes));
    }

    static IReadOnlyList<string> ReadArchitectures(JsonFields json)
    {
        var architectures = json.Has("architectures") ? json.StringList("architectures") : [];
        foreach (var architecture in architectures)
            if (!SupportedArchitectures.Contains(architecture))
                throw ModelConfigException.Unsupported(json.File, "architectures", architecture, string.Join(", ", SupportedArchitectures));
        return architectures;
    }

    static void RefuseUnsupported(JsonFields json)
    {
        var act = json.String("hidden_act") ?? "silu";
        if (act != "silu") throw ModelConfigException.Unsupported(json.File, "hidden_act", act, "silu");
        if (json.Has("quantization_config"))
            throw ModelConfigException.Unsupported(json.File, "quantization_config", "(present)", "unquantized checkpoints only");
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

    /// llama: attention_bias on q, k, v and o; qwen2: q, k, v always, o never; mistral: none.
    static (bool Qkv, bool Output) AttentionBiases(JsonFields json, string modelType) => modelType switch
    {
        "qwen2" => (true, false),
        "mistral" => (false, false),
        _ => (json.Bool("attention_bias") ?? false, json.Bool("attention_bias") ?? false),
    };

    static string? ReadDtype(JsonFields json)
    {
        var field = json.Has("dtype") ? "dtype" : "torch_dtype";
        var dtype = json.String(field);
        return dtype is null or "float32" or "bfloat16" or "float16" ? dtype
            : throw ModelConfigException.Unsupported(json.File, field, dtype, "float32, bfloat16, float16");
    }

    static int? ReadSlidingWindow(JsonFields json, string modelType)
    {
        var window = json.Int("sliding_window");
        if (window is null) return null;
        // qwen2 configs carry sliding_window even when it is off; only use_sliding_window turns it on
        var inEffect = modelType switch
        {
            "mistral" => true,
            "qwen2" => json.Bool("use_sliding_window") ?? false,
            _ => false,
        };
        if (!inEffect) return null;
        return window > 0 ? window
            : throw new ModelConfigException($"{json.File}: field 'sliding_window' must be positive, got {window}");
    }
}
