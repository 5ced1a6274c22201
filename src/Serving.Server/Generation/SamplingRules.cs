using Serving.Engine.Sampling;

namespace Serving.Server.Generation;

/// The sampling limits every API applies (OpenAI's ranges plus the server's caps), and the mapping to
/// the engine's SamplingParams. A failure is ApiException 400 naming the field; the HTTP API answers it
/// as 400, gRPC as INVALID_ARGUMENT. Validate runs once per request; ToSamplingParams once per prompt,
/// because the token budget depends on the prompt's length.
internal static class SamplingRules
{
    public static void Validate(SamplingFields fields, RequestLimits limits)
    {
        Check.InRange(fields.Temperature, 0f, 2f, "temperature");
        Check.InRange(fields.TopP, 0f, 1f, "top_p");
        Check.That(fields.TopP is null or > 0f, "top_p", "top_p must be greater than 0.");
        Check.InRange(fields.TopK, -1, limits.VocabSize, "top_k");
        Check.InRange(fields.MinP, 0f, 1f, "min_p");
        Check.InRange(fields.N, 1, limits.MaxN, "n");
        Check.InRange(fields.PresencePenalty, -2f, 2f, "presence_penalty");
        Check.InRange(fields.FrequencyPenalty, -2f, 2f, "frequency_penalty");
        Check.InRange(fields.RepetitionPenalty, 0f, 10f, "repetition_penalty");
        Check.That(fields.RepetitionPenalty is null or > 0f, "repetition_penalty", "repetition_penalty must be greater than 0.");
        Check.InRange(fields.MinTokens, 0, limits.MaxModelLen, "min_tokens");
        Check.InRange(fields.MaxTokens, 1, int.MaxValue, "max_tokens");
        Check.InRange(fields.PromptLogprobs, 0, limits.MaxLogprobs, "prompt_logprobs");
        Check.TokenIds(fields.StopTokenIds, limits.VocabSize, "stop_token_ids");
        Check.That(fields.Stop.Count <= limits.MaxStopSequences, "stop", $"At most {limits.MaxStopSequences} stop sequences are allowed.");
        Check.That(fields.Stop.All(s => s.Length > 0), "stop", "Stop sequences must not be empty.");
        foreach (var (id, bias) in fields.LogitBias ?? new Dictionary<int, float>())
        {
            Check.That(id >= 0 && id < limits.VocabSize, "logit_bias", $"logit_bias key '{id}' is not a token id in [0, {limits.VocabSize}).");
            Check.InRange(bias, -100f, 100f, "logit_bias");
        }
    }

    /// A request's sequences (prompts x n) must fit its cap and the waiting queue, else no retry could help:
    /// 400, not 429. Checked before any prompt is tokenized.
    public static void Sequences(int prompts, int? n, RequestLimits limits)
    {
        var sequences = (long)prompts * (n ?? 1);
        Check.That(sequences <= limits.MaxSeqsPerRequest, prompts > 1 ? "prompt" : "n",
            $"The request asks for {sequences} sequences ({prompts} prompts x n={n ?? 1}); at most {limits.MaxSeqsPerRequest} are " +
            "allowed per request (--max-seqs-per-request).");
        Check.That(sequences <= limits.MaxQueuedSeqs, prompts > 1 ? "prompt" : "n",
            $"The request asks for {sequences} sequences ({prompts} prompts x n={n ?? 1}), more than the {limits.MaxQueuedSeqs} " +
            "the server can ever queue (--max-num-queued-reqs).");
    }

    /// What SamplingFields.Logprobs holds for a request's logprobs flag and top_logprobs count (chat and gRPC
    /// spell them so): null without logprobs, else the number of alternatives.
    public static int? Logprobs(bool logprobs, int? topLogprobs, RequestLimits limits)
    {
        Check.InRange(topLogprobs, 0, limits.MaxLogprobs, "top_logprobs");
        Check.That(topLogprobs is null || logprobs, "top_logprobs", "top_logprobs requires logprobs to be true.");
        return logprobs ? topLogprobs ?? 0 : null;
    }

    /// A field the request leaves out takes the model's default (generation_config.json, ModelInfo.SamplingDefaults),
    /// else OpenAI's; an absent max_tokens means all the context the prompt leaves (vLLM), or the model's
    /// max_new_tokens when that is less. promptParam names the prompt field in error messages.
    public static SamplingParams ToSamplingParams(SamplingFields fields, int promptTokens, RequestLimits limits, string promptParam)
    {
        var room = limits.MaxModelLen - promptTokens;
        Check.That(room >= 1, promptParam, $"This model's maximum context length is {limits.MaxModelLen} tokens. " +
            $"However, your prompt has {promptTokens} tokens, which leaves no room for a completion.");
        var model = limits.Defaults;
        var budget = fields.MaxTokens ?? Math.Min(room, model.MaxTokens ?? room);
        Check.That(budget <= room, "max_tokens", $"This model's maximum context length is {limits.MaxModelLen} tokens. " +
            $"However, you requested {(long)promptTokens + budget} tokens ({promptTokens} in the prompt, {budget} in the completion).");
        Check.That(fields.MinTokens is null || fields.MinTokens <= budget, "min_tokens", "min_tokens must not exceed max_tokens.");
        return new SamplingParams
        {
            N = fields.N ?? 1,
            MaxTokens = budget,
            MinTokens = fields.MinTokens ?? 0,
            Temperature = fields.Temperature ?? model.Temperature ?? 1f,
            TopP = fields.TopP ?? model.TopP ?? 1f,
            TopK = (fields.TopK ?? model.TopK) is null or -1 ? 0 : (fields.TopK ?? model.TopK)!.Value,
            MinP = fields.MinP ?? model.MinP ?? 0f,
            Seed = fields.Seed,
            PresencePenalty = fields.PresencePenalty ?? 0f,
            FrequencyPenalty = fields.FrequencyPenalty ?? 0f,
            RepetitionPenalty = fields.RepetitionPenalty ?? model.RepetitionPenalty ?? 1f,
            LogitBias = fields.LogitBias is { Count: > 0 } bias ? bias : null,
            Stop = fields.Stop,
            StopTokenIds = fields.StopTokenIds,
            IgnoreEos = fields.IgnoreEos ?? false,
            Logprobs = fields.Logprobs,
            PromptLogprobs = fields.PromptLogprobs,
            SkipSpecialTokens = fields.SkipSpecialTokens ?? true,
            IncludeStopStringInOutput = fields.IncludeStopStrInOutput ?? false,
            StructuredOutputs = fields.StructuredOutputs,
        };
    }
}
