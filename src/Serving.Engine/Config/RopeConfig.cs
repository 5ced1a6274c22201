namespace Serving.Engine.Config;

public enum RopeType { Default, Linear, Llama3, LongRope }

/// Rotary position embedding parameters, from either spelling of config.json:
/// `rope_theta` + `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5).
public sealed record RopeConfig
{
    public double Theta { get; init; } = 10000.0;
    public RopeType Type { get; init; } = RopeType.Default;
    /// linear and llama3: positions are stretched by this factor.
    public double Factor { get; init; } = 1.0;
    /// llama3 only.
    public double LowFreqFactor { get; init; } = 1.0;
    public double HighFreqFactor { get; init; } = 4.0;
    public int OriginalMaxPositionEmbeddings { get; init; } = 8192;
    /// longrope only: per-frequency divisors for positions below OriginalMaxPositionEmbeddings (short) and from it on (long).
    public IReadOnlyList<double> ShortFactor { get; init; } = [];
    public IReadOnlyList<double> LongFactor { get; init; } = [];
    /// cos and sin are multiplied by this (longrope's attention_factor; 1 otherwise).
    public double AttentionScaling { get; init; } = 1.0;

    /// (rotaryDim / 2) inverse frequencies theta^(-2i/rotaryDim), scaled as Type says; what transformers' rope init
    /// gives. longContext picks longrope's long factors (positions from OriginalMaxPositionEmbeddings on).
    public float[] InverseFrequencies(int rotaryDim, bool longContext = false)
    {
        var half = rotaryDim / 2;
        var result = new float[half];
        for (var i = 0; i < half; i++)
        {
            // transformers computes base ** (2i / dim) in float32; computing it in double then rounding is within 1 ulp
            var invFreq = 1.0 / Math.Pow(Theta, 2.0 * i / rotaryDim);
            result[i] = (float)Scale(invFreq, i, longContext);
        }
        return result;
    }

    /// Positions from which longrope's long factors apply; int.MaxValue for every other type.
    public int LongContextStart => Type == RopeType.LongRope ? OriginalMaxPositionEmbeddings : int.MaxValue;

    double Scale(double invFreq, int i, bool longContext) => Type switch
    {
        RopeType.Linear => invFreq / Factor,
        RopeType.Llama3 => Llama3Scale(invFreq),
        RopeType.LongRope => invFreq / (longContext ? LongFactor : ShortFactor)[i],
        _ => invFreq,
    };

    /// Llama 3.1: long wavelengths are divided by Factor, short ones kept, the band between interpolated smoothly.
    double Llama3Scale(double invFreq)
    {
        var wavelength = 2 * Math.PI / invFreq;
        var lowFreqWavelength = OriginalMaxPositionEmbeddings / LowFreqFactor;
        var highFreqWavelength = OriginalMaxPositionEmbeddings / HighFreqFactor;
        if (wavelength < highFreqWavelength) return invFreq;
        if (wavelength > lowFreqWavelength) return invFreq / Factor;
        var smooth = (OriginalMaxPositionEmbeddings / wavelength - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
        return (1 - smooth) * invFreq / Factor + smooth * invFreq;
    }

    /// Reads rope_parameters when present, else rope_theta + rope_scaling.
    internal static RopeConfig Read(JsonFields config)
    {
        var parameters = config.Object("rope_parameters");
        if (parameters is not null)
        {
            if (parameters.Has("full_attention"))
                throw new ModelConfigException($"{config.File}: per-layer-type 'rope_parameters' are not supported");
            return ReadScaling(parameters, parameters.Double("rope_theta") ?? config.Double("rope_theta") ?? 10000.0, config);
        }
        var theta = config.Double("rope_theta") ?? 10000.0;
        var scaling = config.Object("rope_scaling");
        return scaling is null ? new RopeConfig { Theta = theta } : ReadScaling(scaling, theta, config);
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
            _ => throw ModelConfigException.Unsupported(scaling.File, scaling.Name(typeField), typeName, "default, linear, llama3, longrope"),
        };
        var rope = new RopeConfig { Theta = theta, Type = type };
        if (type == RopeType.Default) return rope;
        if (type == RopeType.LongRope) return ReadLongRope(scaling, rope, config);
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
