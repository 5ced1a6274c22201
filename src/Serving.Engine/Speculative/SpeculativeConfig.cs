using System.Text.Json;

namespace Serving.Engine.Speculative;

/// Speculative decoding by prompt lookup, vLLM's `--speculative-config '{"method": "ngram", ...}'`: each step a
/// decoding sequence may bring up to NumSpeculativeTokens draft tokens, copied from what followed the last
/// occurrence of its longest recent n-gram (PromptLookupMin..PromptLookupMax tokens) earlier in its prompt or
/// output; the step checks them all in one forward and keeps those the model itself would have sampled.
public sealed record SpeculativeConfig
{
    /// The most draft tokens a sequence brings to one step (vLLM's num_speculative_tokens).
    public required int NumSpeculativeTokens { get; init; }
    /// The shortest n-gram that may be matched (vLLM's prompt_lookup_min).
    public int PromptLookupMin { get; init; } = DefaultLookup;
    /// The longest n-gram tried first (vLLM's prompt_lookup_max).
    public int PromptLookupMax { get; init; } = DefaultLookup;
    /// No drafts while more sequences than this are running or waiting (vLLM's disable_by_batch_size): a large batch
    /// already keeps the GPU busy, and steps that check drafts run without CUDA graphs. Null: always speculate.
    public int? DisableByBatchSize { get; init; }

    /// vLLM's default when neither bound is given.
    const int DefaultLookup = 5;

    /// vLLM's JSON: {"method": "ngram", "num_speculative_tokens": k, "prompt_lookup_max": n, "prompt_lookup_min": m,
    /// "disable_by_batch_size": b} (one bound given stands for both). ArgumentException naming the field for anything else: draft models,
    /// EAGLE and MTP need a second model this server does not load.
    public static SpeculativeConfig Parse(string json)
    {
        JsonElement root;
        try
        {
            root = JsonDocument.Parse(json).RootElement;
        }
        catch (JsonException error)
        {
            throw new ArgumentException($"speculative-config is not JSON: {error.Message}");
        }
        if (root.ValueKind != JsonValueKind.Object)
            throw new ArgumentException("speculative-config must be a JSON object");
        int? min = null, max = null, k = null, disableBy = null;
        string? method = null, model = null;
        foreach (var field in root.EnumerateObject())
        {
            switch (field.Name)
            {
                case "method": method = field.Value.ValueKind == JsonValueKind.String ? field.Value.GetString() : null; break;
                case "model": model = field.Value.ValueKind == JsonValueKind.String ? field.Value.GetString() : null; break;
                case "num_speculative_tokens": k = Integer(field); break;
                case "prompt_lookup_min": min = Integer(field); break;
                case "prompt_lookup_max": max = Integer(field); break;
                case "disable_by_batch_size": disableBy = field.Value.ValueKind == JsonValueKind.Null ? null : Integer(field); break;
                default:
                    throw new ArgumentException(
                        $"speculative-config: '{field.Name}' is not supported (method \"ngram\" takes num_speculative_tokens, prompt_lookup_min, prompt_lookup_max, disable_by_batch_size)");
            }
        }
        method ??= model is "ngram" or "[ngram]" ? "ngram" : null;   // vLLM's older spelling: "model": "[ngram]"
        if (method != "ngram")
            throw new ArgumentException(
                $"speculative-config: method {(method is null ? "(missing)" : $"\"{method}\"")} is not supported; this server speculates by prompt lookup, method \"ngram\"");
        if (k is null)
            throw new ArgumentException("speculative-config: num_speculative_tokens is required");
        var config = new SpeculativeConfig
        {
            NumSpeculativeTokens = k.Value,
            PromptLookupMin = min ?? max ?? DefaultLookup,
            PromptLookupMax = max ?? min ?? DefaultLookup,
            DisableByBatchSize = disableBy,
        };
        config.Validate();
        return config;
    }

    /// ArgumentException naming the field out of range.
    public void Validate()
    {
        if (NumSpeculativeTokens is < 1 or > 64)
            throw new ArgumentException($"speculative-config: num_speculative_tokens must be 1..64, got {NumSpeculativeTokens}");
        if (PromptLookupMin < 1)
            throw new ArgumentException($"speculative-config: prompt_lookup_min must be at least 1, got {PromptLookupMin}");
        if (PromptLookupMax < PromptLookupMin)
            throw new ArgumentException(
                $"speculative-config: prompt_lookup_max ({PromptLookupMax}) must be at least prompt_lookup_min ({PromptLookupMin})");
        if (DisableByBatchSize < 1)
            throw new ArgumentException($"speculative-config: disable_by_batch_size must be at least 1, got {DisableByBatchSize}");
    }

    public override string ToString() =>
        $"ngram, {NumSpeculativeTokens} speculative tokens, n-grams of {PromptLookupMin}..{PromptLookupMax}" +
        (DisableByBatchSize is { } most ? $", off above {most} running sequences" : "");

    static int Integer(JsonProperty field) =>
        field.Value.ValueKind == JsonValueKind.Number && field.Value.TryGetInt32(out var value)
            ? value : throw new ArgumentException($"speculative-config: {field.Name} must be an integer");
}
