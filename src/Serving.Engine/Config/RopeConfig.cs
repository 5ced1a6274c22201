namespace Serving.Engine.Config;

public enum RopeType { Default, Linear, Llama3, LongRope, Yarn, DynamicNtkAlpha }

/// Rotary position embedding parameters, from either spelling of config.json:
/// `rope_theta` + `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5).
public sealed record RopeConfig
{
    public double Theta { get; init; } = 10000.0;
    public RopeType Type { get; init; } = RopeType.Default;
    /// linear, llama3 and yarn: positions are stretched by this factor.
    public double Factor { get; init; } = 1.0;
    /// llama3 only.
    public double LowFreqFactor { get; init; } = 1.0;
    public double HighFreqFactor { get; init; } = 4.0;
    /// llama3, longrope and yarn: the context the model was pretrained on.
    public int OriginalMaxPositionEmbeddings { get; init; } = 8192;
    /// yarn only: frequencies turning more than BetaFast times over the original context are kept, fewer than
    /// BetaSlow times are divided by Factor, the band between is blended; Truncate rounds the band outwards to whole
    /// dimensions (transformers' default).
    public double BetaFast { get; init; } = 32;
    public double BetaSlow { get; init; } = 1;
    public bool Truncate { get; init; } = true;
    /// longrope only: per-frequency divisors for positions below OriginalMaxPositionEmbeddings (short) and from it on (long).
    public IReadOnlyList<double> ShortFactor { get; init; } = [];
    public IReadOnlyList<double> LongFactor { get; init; } = [];
    /// dynamic with alpha (Hunyuan's NTK-aware scaling): the rope's base is Theta * Alpha^(d / (d - 2)) for a rotary
    /// dimension d, at every position (vLLM's DynamicNTKAlphaRotaryEmbedding, transformers' HunYuan rotary embedding).
    public double Alpha { get; init; } = 1.0;
    /// cos and sin are multiplied by this (longrope's and yarn's attention_factor; 1 otherwise).
    public double AttentionScaling { get; init; } = 1.0;

    /// The context the rope was set up to serve, given config.json's max_position_embeddings: vLLM's derived max
    /// model length. Linear scaling stretches max_position_embeddings by Factor, yarn its original context by Factor;
    /// llama3 and longrope checkpoints already give the stretched length.
    public int ContextLength(int maxPositionEmbeddings) => Type switch
    {
        RopeType.Linear => Stretched(maxPositionEmbeddings),
        RopeType.Yarn => Stretched(OriginalMaxPositionEmbeddings),
        _ => maxPositionEmbeddings,
    };

    /// The base whose powers give the inverse frequencies: Theta, raised by dynamic-alpha scaling (in doubles, as
    /// Python computes it).
    public double Base(int rotaryDim) =>
        Type == RopeType.DynamicNtkAlpha ? Theta * Math.Pow(Alpha, rotaryDim / (rotaryDim - 2.0)) : Theta;

    int Stretched(int positions) => (int)Math.Min(int.MaxValue, Math.Floor(positions * Factor));

    /// Positions from which longrope's long factors apply; int.MaxValue for every other type.
    public int LongContextStart => Type == RopeType.LongRope ? OriginalMaxPositionEmbeddings : int.MaxValue;

    /// YaRN's band of dimensions [Low, High] (transformers' find_correction_range, in doubles as Python computes it):
    /// frequencies below it are kept, above it divided by Factor, across it blended. Low is where a frequency turns
    /// BetaFast times over the original context, High where it turns BetaSlow times; Truncate rounds them outwards.
    public (double Low, double High) YarnBand(int rotaryDim)
    {
        double Dimension(double rotations) =>
            rotaryDim * Math.Log(OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(Theta));
        var (low, high) = (Dimension(BetaFast), Dimension(BetaSlow));
        if (Truncate) (low, high) = (Math.Floor(low), Math.Ceiling(high));
        return (Math.Max(low, 0), Math.Min(high, rotaryDim - 1));
    }

    /// Reads rope_theta + rope_scaling, else rope_parameters. As in transformers 5, a rope_scaling object wins over
    /// rope_parameters (what `--hf-overrides '{"rope_scaling": ...}'` on a transformers-5 config relies on); its
    /// theta is then rope_scaling's, else the top-level rope_theta, else rope_parameters' (where transformers 5
    /// wrote it).
    /// layerType: with transformers 5's rope_parameters per layer type (gemma3: full_attention, sliding_attention), the
    /// one to read; full_attention by default.
    internal static RopeConfig Read(JsonFields config, string layerType = "full_attention")
    {
        var scaling = config.Object("rope_scaling");
        var parameters = config.Object("rope_parameters");
        if (parameters is not null && parameters.Has("full_attention"))
            parameters = parameters.Object(layerType)
                ?? throw new ModelConfigException($"{config.File}: rope_parameters has no '{layerType}' entry");
        var chosen = scaling is { Json.Count: > 0 } ? scaling : parameters ?? scaling;  // an empty rope_scaling gives way, as in Python
        var theta = chosen?.Double("rope_theta") ?? config.Double("rope_theta") ?? parameters?.Double("rope_theta") ?? 10000.0;
        return chosen is null ? new RopeConfig { Theta = theta } : ReadScaling(chosen, theta, config);
    }

    static RopeConfig ReadScaling(JsonFields scaling, double theta, JsonFields config)
    {
        // transformers accepts both "rope_type" and the legacy "type"
        var typeField = scaling.Has("rope_type") ? "rope_type" : "type";
        var typeName = scaling.String(typeField) ?? "default";
        var type = typeName switch
        {
            "default" => RopeType.Default,
            "linear" => RopeType.Linear,
            "llama3" => RopeType.Llama3,
            "longrope" or "su" => RopeType.LongRope,
            "yarn" => RopeType.Yarn,
            // dynamic NTK by a factor rescales by the batch's longest sequence in transformers: not served
            "dynamic" when scaling.Has("alpha") => RopeType.DynamicNtkAlpha,
            _ => throw ModelConfigException.Unsupported(scaling.File, scaling.Name(typeField), typeName,
                "default, linear, llama3, longrope, yarn, dynamic with alpha"),
        };
        var rope = new RopeConfig { Theta = theta, Type = type };
        if (type == RopeType.Default) return rope;
        if (type == RopeType.DynamicNtkAlpha) return rope with { Alpha = RequiredPositive(scaling, "alpha") };
        if (type == RopeType.LongRope) return ReadLongRope(scaling, rope, config);
        if (type == RopeType.Yarn) return ReadYarn(scaling, rope, config);
        rope = rope with { Factor = RequiredPositive(scaling, "factor") };
        if (type != RopeType.Llama3) return rope;
        return rope with
        {
            LowFreqFactor = RequiredPositive(scaling, "low_freq_factor"),
            HighFreqFactor = RequiredPositive(scaling, "high_freq_factor"),
            OriginalMaxPositionEmbeddings = scaling.PositiveInt("original_max_position_embeddings"),
        };
    }

    /// transformers' longrope: factors per frequency, and cos/sin scaled by attention_factor, by default
    /// sqrt(1 + ln(factor) / ln(original context)) with factor = max_position_embeddings / original_max_position_embeddings.
    static RopeConfig ReadLongRope(JsonFields scaling, RopeConfig rope, JsonFields config)
    {
        var maxPositions = config.Int("max_position_embeddings") ?? 2048;
        var original = config.Int("original_max_position_embeddings") ?? scaling.Int("original_max_position_embeddings") ?? maxPositions;
        var factor = config.Has("original_max_position_embeddings") ? (double)maxPositions / original : scaling.Double("factor") ?? 1.0;
        var scalingFactor = scaling.Double("attention_factor")
            ?? (factor <= 1 ? 1.0 : Math.Sqrt(1 + Math.Log(factor) / Math.Log(original)));
        return rope with
        {
            Factor = factor,
            OriginalMaxPositionEmbeddings = original,
            ShortFactor = Factors(scaling, "short_factor"),
            LongFactor = Factors(scaling, "long_factor"),
            AttentionScaling = scalingFactor,
        };
    }

    /// transformers' yarn: the original context from config.json's original_max_position_embeddings, else the
    /// scaling's, else max_position_embeddings; cos/sin scaled by attention_factor, by default 0.1 ln(factor) + 1, or DeepSeek's
    /// ratio of that form with mscale over mscale_all_dim when both are given.
    static RopeConfig ReadYarn(JsonFields scaling, RopeConfig rope, JsonFields config)
    {
        var factor = RequiredPositive(scaling, "factor");
        double Mscale(double mscale) => factor <= 1 ? 1.0 : 0.1 * mscale * Math.Log(factor) + 1.0;
        var mscale = scaling.Double("mscale");
        var mscaleAllDim = scaling.Double("mscale_all_dim");
        var attentionFactor = scaling.Double("attention_factor")
            ?? (mscale is { } m && m != 0 && mscaleAllDim is { } all && all != 0 ? Mscale(m) / Mscale(all) : Mscale(1));
        return rope with
        {
            Factor = factor,
            OriginalMaxPositionEmbeddings = config.Has("original_max_position_embeddings") ? config.PositiveInt("original_max_position_embeddings")
                : scaling.Has("original_max_position_embeddings") ? scaling.PositiveInt("original_max_position_embeddings")
                : config.Int("max_position_embeddings") ?? 2048,
            // transformers reads `beta_fast or 32`: a 0 or null falls back to the default as well
            BetaFast = scaling.Double("beta_fast") is { } fast and not 0 ? fast : 32,
            BetaSlow = scaling.Double("beta_slow") is { } slow and not 0 ? slow : 1,
            Truncate = scaling.Bool("truncate") ?? true,
            AttentionScaling = attentionFactor,
        };
    }

    static IReadOnlyList<double> Factors(JsonFields scaling, string field)
    {
        var values = scaling.DoubleList(field);
        return values.Count > 0 && values.All(v => v > 0) ? values
            : throw new ModelConfigException($"{scaling.File}: field '{scaling.Name(field)}' must be a non-empty list of positive numbers");
    }

    static double RequiredPositive(JsonFields scaling, string field)
    {
        var value = scaling.Double(field)
            ?? throw new ModelConfigException($"{scaling.File}: missing required field '{scaling.Name(field)}'");
        return value > 0 ? value
            : throw new ModelConfigException($"{scaling.File}: field '{scaling.Name(field)}' must be positive, got {value}");
    }
}
