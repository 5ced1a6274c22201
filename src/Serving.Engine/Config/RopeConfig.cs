namespace Serving.Engine.Config;

public enum RopeType { Default, Linear, Llama3 }

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

    /// (headDim / 2) inverse frequencies theta^(-2i/headDim), scaled as Type says; what transformers' rope init gives.
    public float[] InverseFrequencies(int headDim)
    {
        var half = headDim / 2;
        var result = new float[half];
        for (var i = 0; i < half; i++)
        {
            // transformers computes base ** (2i / dim) in float32; computing it in double then rounding is within 1 ulp
            var invFreq = 1.0 / Math.Pow(Theta, 2.0 * i / headDim);
            result[i] = (float)Scale(invFreq);
        }
        return result;
    }

    double Scale(double invFreq) => Type switch
    {
        RopeType.Linear => invFreq / Factor,
        RopeType.Llama3 => Llama3Scale(invFreq),
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
            return ReadScaling(parameters, parameters.Double("rope_theta") ?? config.Double("rope_theta") ?? 10000.0);
        }
        var theta = config.Double("rope_theta") ?? 10000.0;
        var scaling = config.Object("rope_scaling");
        return scaling is null ? new RopeConfig { Theta = theta } : ReadScaling(scaling, theta);
    }

    static RopeConfig ReadScaling(JsonFields scaling, double theta)
    {
        // transformers accepts both "rope_type" and the legacy "type"
        var typeField = scaling.Has("rope_type") ? "rope_type" : "type";
        var typeName = scaling.String(typeField) ?? "default";
        var type = typeName switch
        {
            "default" => RopeType.Default,
            "linear" => RopeType.Linear,
            "llama3" => RopeType.Llama3,
            _ => throw ModelConfigException.Unsupported(scaling.File, scaling.Name(typeField), typeName, "default, linear, llama3"),
        };
        var rope = new RopeConfig { Theta = theta, Type = type };
        if (type == RopeType.Default) return rope;
        rope = rope with { Factor = RequiredPositive(scaling, "factor") };
        if (type != RopeType.Llama3) return rope;
        return rope with
        {
            LowFreqFactor = RequiredPositive(scaling, "low_freq_factor"),
            HighFreqFactor = RequiredPositive(scaling, "high_freq_factor"),
            OriginalMaxPositionEmbeddings = scaling.PositiveInt("original_max_position_embeddings"),
        };
    }

    static double RequiredPositive(JsonFields scaling, string field)
    {
        var value = scaling.Double(field)
            ?? throw new ModelConfigException($"{scaling.File}: missing required field '{scaling.Name(field)}'");
        return value > 0 ? value
            : throw new ModelConfigException($"{scaling.File}: field '{scaling.Name(field)}' must be positive, got {value}");
    }
}
