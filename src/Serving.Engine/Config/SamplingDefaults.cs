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

    /// These defaults with every value the overrides set replacing this one's (vLLM's --override-generation-config).
    public SamplingDefaults With(SamplingDefaults overrides) => new()
    {
        Temperature = overrides.Temperature ?? Temperature, TopP = overrides.TopP ?? TopP, TopK = overrides.TopK ?? TopK,
        MinP = overrides.MinP ?? MinP, RepetitionPenalty = overrides.RepetitionPenalty ?? RepetitionPenalty,
        MaxTokens = overrides.MaxTokens ?? MaxTokens,
    };

    /// generation_config.json's sampling fields given as a JSON object (--override-generation-config); a field it does
    /// not take, a value of the wrong type or text that is not an object is an ArgumentException naming the flag.
    public static SamplingDefaults Parse(string json)
    {
        const string Source = "override-generation-config";
        System.Text.Json.Nodes.JsonObject fields;
        try
        {
            fields = System.Text.Json.Nodes.JsonNode.Parse(json) as System.Text.Json.Nodes.JsonObject
                ?? throw new ArgumentException($"{Source} must be a JSON object (got {json})");
        }
        catch (System.Text.Json.JsonException error)
        {
            throw new ArgumentException($"{Source} is not JSON: {error.Message}", error);
        }
        if (fields.Select(f => f.Key).FirstOrDefault(name => !GenerationConfig.SamplingFields.Contains(name)) is { } unknown)
            throw new ArgumentException($"{Source}: '{unknown}' is not one of {string.Join(", ", GenerationConfig.SamplingFields)}");
        try
        {
            return GenerationConfig.Read(new JsonFields(fields, Source)).SamplingDefaults;
        }
        catch (ModelConfigException error)
        {
            throw new ArgumentException(error.Message, error);
        }
    }
}
