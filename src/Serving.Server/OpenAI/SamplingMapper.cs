using System.Globalization;
using System.Text.Json;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI;

/// Reads the sampling fields of an OpenAI request (JSON shapes: "stop" as a string or a list, logit_bias
/// keys as strings) into SamplingFields, whose limits and mapping the gRPC API shares (SamplingRules).
internal static class SamplingMapper
{
    /// The request's checked sampling fields, read once per HTTP request; SamplingRules.ToSamplingParams then
    /// maps them for each prompt. maxTokens is the request's budget (max_tokens, or chat's
    /// max_completion_tokens); logprobs what the request asked for (see SamplingFields.Logprobs).
    public static SamplingFields Read(SamplingRequest request, int? maxTokens, int? logprobs, RequestLimits limits,
        int? promptLogprobs = null)
    {
        Check.That(request.StreamOptions is null || request.Stream == true, "stream_options",
            "stream_options may only be set when stream is true.");
        // vLLM's rule: prompt log-probabilities come with a whole answer only
        Check.That(request.PromptLogprobs is null || request.Stream != true, "prompt_logprobs",
            "prompt_logprobs is not available when stream is true.");
        // polymorphic fields read later: invalid Unicode anywhere inside is the client's error, named by path
        foreach (var (field, value) in new[] { ("response_format", request.ResponseFormat), ("structured_outputs", request.StructuredOutputs),
            ("guided_json", request.GuidedJson), ("guided_regex", request.GuidedRegex), ("guided_choice", request.GuidedChoice),
            ("guided_grammar", request.GuidedGrammar) })
            if (value is { } element) Check.ValidText(element, field);
        var fields = Fields(request, maxTokens, logprobs, limits) with { PromptLogprobs = promptLogprobs ?? request.PromptLogprobs };
        SamplingRules.Validate(fields, limits);
        return fields;
    }

    static SamplingFields Fields(SamplingRequest request, int? maxTokens, int? logprobs, RequestLimits limits) => new()
    {
        MaxTokens = maxTokens,
        Temperature = request.Temperature,
        TopP = request.TopP,
        TopK = request.TopK,
        MinP = request.MinP,
        N = request.N,
        Seed = request.Seed,
        PresencePenalty = request.PresencePenalty,
        FrequencyPenalty = request.FrequencyPenalty,
        RepetitionPenalty = request.RepetitionPenalty,
        LogitBias = LogitBias(request.LogitBias, limits.VocabSize),
        AllowedTokenIds = request.AllowedTokenIds,
        BadWords = request.BadWords ?? [],
        Stop = StopStrings(request.Stop, limits.MaxStopSequences),
        StopTokenIds = request.StopTokenIds ?? [],
        MinTokens = request.MinTokens,
        IgnoreEos = request.IgnoreEos,
        Logprobs = logprobs,
        SkipSpecialTokens = request.SkipSpecialTokens,
        IncludeStopStrInOutput = request.IncludeStopStrInOutput,
        StructuredOutputs = StructuredOutputFields.Read(request),
        UseBeamSearch = request.UseBeamSearch,
        LengthPenalty = request.LengthPenalty,
    };

    /// "stop": a string or a list of strings, at most maxCount of them (emptiness is SamplingRules' check).
    public static IReadOnlyList<string> StopStrings(JsonElement? stop, int maxCount)
    {
        if (stop is not { } element || element.ValueKind == JsonValueKind.Null) return [];
        if (element.ValueKind == JsonValueKind.String) return [Check.Text(element, "stop")];
        Check.That(element.ValueKind == JsonValueKind.Array, "stop", "stop must be a string or a list of strings.");
        // Counted before reading, so a huge list is refused without decoding it.
        Check.That(element.GetArrayLength() <= maxCount, "stop", $"At most {maxCount} stop sequences are allowed.");
        var list = new List<string>();
        foreach (var item in element.EnumerateArray())
        {
            Check.That(item.ValueKind == JsonValueKind.String, "stop", "stop must be a string or a list of strings.");
            list.Add(Check.Text(item, "stop"));
        }
        return list;
    }

    /// "logit_bias": token ids as strings (OpenAI's format); their range is SamplingRules' check.
    static Dictionary<int, float>? LogitBias(Dictionary<string, float>? bias, int vocabSize)
    {
        if (bias is null || bias.Count == 0) return null;
        var result = new Dictionary<int, float>(bias.Count);
        foreach (var (key, value) in bias)
        {
            Check.That(int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out var id),
                "logit_bias", $"logit_bias key '{key}' is not a token id in [0, {vocabSize}).");
            result[id] = value;
        }
        return result;
    }
}
