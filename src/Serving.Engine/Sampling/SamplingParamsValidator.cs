using System.Globalization;

namespace Serving.Engine.Sampling;

/// The ranges vLLM accepts for each sampling parameter (OpenAI's, except that temperature has no upper bound), the
/// one definition the engine and both servers apply. Each failure names the parameter by its OpenAI/vLLM spelling,
/// and the value, so the servers can report it as the offending field.
internal static class SamplingParamsValidator
{
    public static void Validate(SamplingParams p)
    {
        Require(p.N >= 1, "n", $"n must be at least 1 (got {p.N}).");
        Require(p.MaxTokens >= 1, "max_tokens", $"max_tokens must be at least 1 (got {p.MaxTokens}).");
        Require(p.MinTokens >= 0, "min_tokens", $"min_tokens must be at least 0 (got {p.MinTokens}).");
        Require(p.MinTokens <= p.MaxTokens, "min_tokens", $"min_tokens ({p.MinTokens}) must not exceed max_tokens ({p.MaxTokens}).");
        Require(float.IsFinite(p.Temperature) && p.Temperature >= 0f, "temperature",
            $"temperature must be a finite number >= 0 (got {Show(p.Temperature)}).");
        Require(p.TopP > 0f && p.TopP <= 1f, "top_p", $"top_p must be in (0, 1] (got {Show(p.TopP)}).");
        Require(p.TopK >= -1, "top_k", $"top_k must be -1 or 0 (no limit) or at least 1 (got {p.TopK}).");
        Require(p.MinP >= 0f && p.MinP <= 1f, "min_p", $"min_p must be in [0, 1] (got {Show(p.MinP)}).");
        Require(p.PresencePenalty >= -2f && p.PresencePenalty <= 2f, "presence_penalty",
            $"presence_penalty must be in [-2, 2] (got {Show(p.PresencePenalty)}).");
        Require(p.FrequencyPenalty >= -2f && p.FrequencyPenalty <= 2f, "frequency_penalty",
            $"frequency_penalty must be in [-2, 2] (got {Show(p.FrequencyPenalty)}).");
        Require(float.IsFinite(p.RepetitionPenalty) && p.RepetitionPenalty > 0f, "repetition_penalty",
            $"repetition_penalty must be a finite number greater than 0 (got {Show(p.RepetitionPenalty)}).");
        Require(p.Logprobs is null || (p.Logprobs >= 0 && p.Logprobs <= SamplingParams.MaxLogprobs), "logprobs",
            $"logprobs must be in [0, {SamplingParams.MaxLogprobs}] (got {p.Logprobs}).");
        Require(p.PromptLogprobs is null || (p.PromptLogprobs >= 0 && p.PromptLogprobs <= SamplingParams.MaxLogprobs), "prompt_logprobs",
            $"prompt_logprobs must be in [0, {SamplingParams.MaxLogprobs}] (got {p.PromptLogprobs}).");
        foreach (var (id, bias) in p.LogitBias ?? new Dictionary<int, float>())
        {
            Require(id >= 0, "logit_bias", $"logit_bias key '{id}' is not a token id.");
            Require(bias >= -100f && bias <= 100f, "logit_bias", $"logit_bias values must be in [-100, 100] (got {Show(bias)} for '{id}').");
        }
        Require(p.Stop.All(s => !string.IsNullOrEmpty(s)), "stop", "Stop strings must not be empty.");
        Require(p.AllowedTokenIds is null || p.AllowedTokenIds.Count > 0, "allowed_token_ids", "allowed_token_ids must not be empty.");
        Require(p.BadWords.All(w => !string.IsNullOrWhiteSpace(w)), "bad_words", "bad_words must not be empty or blank.");
        p.StructuredOutputs?.Validate();
        if (p.BeamSearch is { } beams) ValidateBeamSearch(p, beams);
    }

    /// What a beam search takes (BeamSearchParams): the fields that would change its distribution or its text are
    /// refused, not ignored.
    static void ValidateBeamSearch(SamplingParams p, BeamSearchParams beams)
    {
        Require(p.N <= BeamSearchParams.MaxBeams, "n", $"use_beam_search keeps at most {BeamSearchParams.MaxBeams} beams (n = {p.N}).");
        Require(float.IsFinite(beams.LengthPenalty), "length_penalty", $"length_penalty must be a finite number (got {Show(beams.LengthPenalty)}).");
        foreach (var (param, given) in new[]
        {
            ("stop", p.Stop.Count > 0), ("bad_words", p.BadWords.Count > 0), ("logit_bias", p.LogitBias is { Count: > 0 }),
            ("allowed_token_ids", p.AllowedTokenIds is not null), ("presence_penalty", p.PresencePenalty != 0f),
            ("frequency_penalty", p.FrequencyPenalty != 0f), ("repetition_penalty", p.RepetitionPenalty != 1f),
            ("min_tokens", p.MinTokens > 0), ("prompt_logprobs", p.PromptLogprobs is not null),
            ("structured_outputs", p.StructuredOutputs is not null),
        })
            Require(!given, param, $"{param} is not supported with use_beam_search.");
    }

    public static void Validate(SamplingParams p, int vocabSize)
    {
        Validate(p);
        foreach (var id in p.LogitBias?.Keys ?? Enumerable.Empty<int>())
            Require(id < vocabSize, "logit_bias", $"logit_bias key '{id}' is not a token id in [0, {vocabSize}).");
        foreach (var id in p.AllowedTokenIds ?? [])
            Require(id >= 0 && id < vocabSize, "allowed_token_ids", $"allowed_token_ids: token id {id} is outside the vocabulary [0, {vocabSize}).");
        foreach (var id in p.StopTokenIds)
            Require(id >= 0 && id < vocabSize, "stop_token_ids", $"stop_token_ids: token id {id} is outside the vocabulary [0, {vocabSize}).");
    }

    static string Show(float value) => value.ToString(CultureInfo.InvariantCulture);

    static void Require(bool condition, string param, string message)
    {
        if (!condition) throw new InvalidRequestException(message, param);
    }
}
