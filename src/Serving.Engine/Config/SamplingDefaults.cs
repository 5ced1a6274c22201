namespace Serving.Engine.Config;

/// Sampling values a request gets for the fields it leaves out, before the API's own defaults: what the model's
/// generation_config.json recommends (vLLM's --generation-config auto). Null: no recommendation.
public sealed record SamplingDefaults
{
    public static readonly SamplingDefaults None = new();

    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public int? TopK { get; init; }
    public float? MinP { get; init; }
    public float? RepetitionPenalty { get; init; }
    /// max_new_tokens: the default max_tokens (still bounded by the room the prompt leaves).
    public int? MaxTokens { get; init; }

    public bool IsNone => this == None;
}
