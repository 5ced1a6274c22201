using System.Globalization;
using System.Text.Json;
using Serving.Engine.Sampling;

namespace Serving.Server.OpenAI;

/// Checks the sampling fields of a request and turns them into the engine's SamplingParams.
/// Validate runs once per HTTP request; Map once per prompt, because the token budget depends on its length.
internal static class SamplingMapper
{
    public static void Validate(SamplingRequest request, RequestLimits limits)
    {
        Check.InRange(request.Temperature, 0f, 2f, "temperature");
        Check.InRange(request.TopP, 0f, 1f, "top_p");
        Check.That(request.TopP is null or > 0f, "top_p", "top_p must be greater than 0.");
        Check.InRange(request.TopK, -1, limits.VocabSize, "top_k");
        Check.InRange(request.MinP, 0f, 1f, "min_p");
        Check.InRange(request.N, 1, limits.MaxN, "n");
        Check.InRange(request.PresencePenalty, -2f, 2f, "presence_penalty");
        Check.InRange(request.FrequencyPenalty, -2f, 2f, "frequency_penalty");
        Check.InRange(request.RepetitionPenalty, 0f, 10f, "repetition_penalty");
        Check.That(request.RepetitionPenalty is null or > 0f, "repetition_penalty", "repetition_penalty must be greater than 0.");
        Check.InRange(request.MinTokens, 0, limits.MaxModelLen, "min_tokens");
        Check.InRange(request.MaxTokens, 1, int.MaxValue, "max_tokens");
        Check.That(request.StreamOptions is null || request.Stream == true, "stream_options",
            "stream_options may only be set when stream is true.");
        if (request.StopTokenIds is { } stopIds) Check.TokenIds(stopIds, limits.VocabSize, "stop_token_ids");
        StopStrings(request.Stop, limits.MaxStopSequences);
        LogitBias(request.LogitBias, limits.VocabSize);
    }

    /// maxTokens is the request's budget (max_tokens, or max_completion_tokens for chat); absent means all
    /// the context the prompt leaves (vLLM). promptParam names the prompt field in error messages.
    public static SamplingParams Map(SamplingRequest request, int? maxTokens, int? logprobs, int promptTokens,
        RequestLimits limits, string promptParam)
    {
        var room = limits.MaxModelLen - promptTokens;
        Check.That(room >= 1, promptParam, $"This model's maximum context length is {limits.MaxModelLen} tokens. " +
            $"However, your prompt has {promptTokens} tokens, which leaves no room for a completion.");
        var budget = maxTokens ?? room;
        Check.That(budget <= room, "max_tokens", $"This model's maximum context length is {limits.MaxModelLen} tokens. " +
            $"However, you requested {promptTokens + budget} tokens ({promptTokens} in the prompt, {budget} in the completion).");
        Check.That(request.MinTokens is null || request.MinTokens <= budget, "min_tokens", "min_tokens must not exceed max_tokens.");
        var temperature = request.Temperature ?? 1f;
        return new SamplingParams
        {
            N = request.N ?? 1,
            MaxTokens = budget,
            MinTokens = request.MinTokens ?? 0,
            Temperature = temperature,
            TopP = request.TopP ?? 1f,
            TopK = request.TopK is null or -1 ? 0 : request.TopK.Value,
            MinP = request.MinP ?? 0f,
            Seed = request.Seed,
            PresencePenalty = request.PresencePenalty ?? 0f,
            FrequencyPenalty = request.FrequencyPenalty ?? 0f,
            RepetitionPenalty = request.RepetitionPenalty ?? 1f,
            LogitBias = LogitBias(request.LogitBias, limits.VocabSize),
            Stop = StopStrings(request.Stop, limits.MaxStopSequences),
            StopTokenIds = request.StopTokenIds ?? [],
            IgnoreEos = request.IgnoreEos ?? false,
            Logprobs = logprobs,
            SkipSpecialTokens = request.SkipSpecialTokens ?? true,
            IncludeStopStringInOutput = request.IncludeStopStrInOutput ?? false,
        };
    }

    /// "stop": a string or a list of non-empty strings, at most maxCount of them.
    public static IReadOnlyList<string> StopStrings(JsonElement? stop, int maxCount)
    {
        if (stop is not { } element || element.ValueKind == JsonValueKind.Null) return [];
        if (element.ValueKind == JsonValueKind.String) return NonEmpty([Check.Text(element, "stop")]);
        Check.That(element.ValueKind == JsonValueKind.Array, "stop", "stop must be a string or a list of strings.");
        Check.That(element.GetArrayLength() <= maxCount, "stop", $"At most {maxCount} stop sequences are allowed.");
        var list = new List<string>();
        foreach (var item in element.EnumerateArray())
        {
            Check.That(item.ValueKind == JsonValueKind.String, "stop", "stop must be a string or a list of strings.");
            list.Add(Check.Text(item, "stop"));
        }
        return NonEmpty(list);
    }

    static IReadOnlyList<string> NonEmpty(IReadOnlyList<string> stops)
    {
        Check.That(stops.All(s => s.Length > 0), "stop", "Stop sequences must not be empty.");
        return stops;
    }

    /// "logit_bias": token ids as strings (OpenAI's format) inside the vocabulary, biases in -100..100.
    static Dictionary<int, float>? LogitBias(Dictionary<string, float>? bias, int vocabSize)
    {
        if (bias is null || bias.Count == 0) return null;
        var result = new Dictionary<int, float>(bias.Count);
        foreach (var (key, value) in bias)
        {
            Check.That(int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id < vocabSize,
                "logit_bias", $"logit_bias key '{key}' is not a token id in [0, {vocabSize}).");
            Check.InRange(value, -100f, 100f, "logit_bias");
            result[id] = value;
        }
        return result;
    }
}
