namespace Serving.Engine.Sampling;

/// The ranges OpenAI and vLLM accept for each sampling parameter. Each failure names the parameter by its
/// OpenAI/vLLM spelling so the servers can report it as the offending field.
internal static class SamplingParamsValidator
{
    public static void Validate(SamplingParams p)
    {
        Require(p.N >= 1, "n", "n must be at least 1");
        Require(p.MaxTokens >= 1, "max_tokens", "max_tokens must be at least 1");
        Require(p.MinTokens >= 0 && p.MinTokens <= p.MaxTokens, "min_tokens",
            "min_tokens must be between 0 and max_tokens");
        Require(float.IsFinite(p.Temperature) && p.Temperature >= 0f, "temperature",
            "temperature must be a finite number >= 0");
        Require(p.TopP > 0f && p.TopP <= 1f, "top_p", "top_p must be in (0, 1]");
        Require(p.TopK >= -1, "top_k", "top_k must be -1 or 0 (disabled) or at least 1");
        Require(p.MinP >= 0f && p.MinP <= 1f, "min_p", "min_p must be in [0, 1]");
        Require(p.PresencePenalty >= -2f && p.PresencePenalty <= 2f, "presence_penalty",
            "presence_penalty must be in [-2, 2]");
        Require(p.FrequencyPenalty >= -2f && p.FrequencyPenalty <= 2f, "frequency_penalty",
            "frequency_penalty must be in [-2, 2]");
        Require(float.IsFinite(p.RepetitionPenalty) && p.RepetitionPenalty > 0f, "repetition_penalty",
            "repetition_penalty must be a finite number > 0");
        Require(p.Logprobs is null || (p.Logprobs >= 0 && p.Logprobs <= SamplingParams.MaxLogprobs), "logprobs",
            $"logprobs must be between 0 and {SamplingParams.MaxLogprobs}");
        Require(p.PromptLogprobs is null || (p.PromptLogprobs >= 0 && p.PromptLogprobs <= SamplingParams.MaxLogprobs), "prompt_logprobs",
            $"prompt_logprobs must be between 0 and {SamplingParams.MaxLogprobs}");
        ValidateLogitBiasValues(p);
        Require(p.Stop.All(s => !string.IsNullOrEmpty(s)), "stop", "stop strings must not be empty");
        p.StructuredOutputs?.Validate();
    }

    public static void Validate(SamplingParams p, int vocabSize)
    {
        Validate(p);
        if (p.LogitBias is { } bias)
        {
            Require(bias.Keys.All(id => id >= 0 && id < vocabSize), "logit_bias",
                $"logit_bias token ids must be in [0, {vocabSize})");
        }
        Require(p.StopTokenIds.All(id => id >= 0 && id < vocabSize), "stop_token_ids",
            $"stop_token_ids must be in [0, {vocabSize})");
    }

    private static void ValidateLogitBiasValues(SamplingParams p)
    {
        if (p.LogitBias is not { } bias)
        {
            return;
        }
        Require(bias.Values.All(v => v >= -100f && v <= 100f), "logit_bias",
            "logit_bias values must be in [-100, 100]");
        Require(bias.Keys.All(id => id >= 0), "logit_bias", "logit_bias token ids must be >= 0");
    }

    private static void Require(bool condition, string param, string message)
    {
        if (!condition)
        {
            throw new InvalidRequestException(message, param);
        }
    }
}
