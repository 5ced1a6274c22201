namespace Serving.Engine.Pooling;

/// How a prompt's final hidden states become one vector (vLLM's pooling_type).
public enum PoolingType
{
    /// The last token's hidden state: what decoder embedding models (Qwen3-Embedding, e5-mistral) are trained for.
    Last,
    /// The first token's.
    Cls,
    /// The mean over every prompt token's.
    Mean,
}

public static class PoolingTypes
{
    /// vLLM's names: LAST, CLS, MEAN (any case).
    public static PoolingType Parse(string name) => name.ToUpperInvariant() switch
    {
        "LAST" => PoolingType.Last,
        "CLS" => PoolingType.Cls,
        "MEAN" => PoolingType.Mean,
        _ => throw new ArgumentException($"pooling_type '{name}' is not supported (LAST, CLS, MEAN)"),
    };

    public static string Name(this PoolingType type) => type.ToString().ToUpperInvariant();

    /// Whether pooling reads every prompt token's hidden state, so that a cached prefix (whose hidden states are not
    /// computed again) cannot be used: CLS reads the first token, MEAN all of them; LAST only the last one, which a
    /// step always computes.
    public static bool NeedsWholePrompt(this PoolingType type) => type != PoolingType.Last;
}
