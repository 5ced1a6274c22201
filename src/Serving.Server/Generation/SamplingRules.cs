using Serving.Engine;
using Serving.Engine.Config;
using Serving.Engine.Sampling;

namespace Serving.Server.Generation;

/// The sampling rules every API applies: the server's own caps (n, logprobs, stop strings, prompts and sequences
/// per request) and the engine's rules (ranges, vocabulary, context length: SamplingParams.Validate and
/// ContextLength), which are written once, in the engine. A failure is a 400 naming the field (the engine's
/// InvalidRequestException maps to one); the HTTP API answers it as 400, gRPC as INVALID_ARGUMENT. Validate runs
/// once per request, before any prompt is tokenized; ToSamplingParams once per prompt, because the token budget
/// depends on the prompt's length.
internal static class SamplingRules
{
    public static void Validate(SamplingFields fields, RequestLimits limits)
    {
        Check.InRange(fields.N, 1, limits.MaxN, "n");
        Check.InRange(fields.PromptLogprobs, 0, limits.MaxLogprobs, "prompt_logprobs");
        Check.That(fields.Stop.Count <= limits.MaxStopSequences, "stop", $"At most {limits.MaxStopSequences} stop sequences are allowed.");
        // the engine's rules, on the fields as given (a budget not yet known counts as the largest)
        Params(fields, fields.MaxTokens ?? int.MaxValue, limits.Defaults).Validate(limits.VocabSize);
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
        var budget = fields.MaxTokens ?? Math.Max(1, Math.Min(room, limits.Defaults.MaxTokens ?? room));
        ContextLength.Check(promptTokens, budget, limits.MaxModelLen, promptParam);
        var sampling = Params(fields, budget, limits.Defaults);
        sampling.Validate(limits.VocabSize);   // min_tokens against the budget now known
        return sampling;
    }

    /// Under beam search nothing is sampled, so the model's sampling defaults (a repetition_penalty beam search refuses
    /// among them) do not apply; its max_new_tokens does.
    static SamplingParams Params(SamplingFields fields, int maxTokens, SamplingDefaults defaults)
    {
        var beamSearch = fields.UseBeamSearch == true ? new BeamSearchParams { LengthPenalty = fields.LengthPenalty ?? 1f } : null;
        var model = beamSearch is null ? defaults : SamplingDefaults.None;
        return Given(fields, maxTokens, model) with { BeamSearch = beamSearch };
    }

    /// The fields given, else the model's defaults, else OpenAI's.
    static SamplingParams Given(SamplingFields fields, int maxTokens, SamplingDefaults model) => new()
    {
        N = fields.N ?? 1,
        MaxTokens = maxTokens,
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
        AllowedTokenIds = fields.AllowedTokenIds,
        BadWords = fields.BadWords,
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
