namespace Serving.Engine.Sampling;

/// Beam search instead of sampling (vLLM's use_beam_search): SamplingParams.N beams, each extended by its most likely
/// next tokens at every step, the best N kept by their summed log-probability; the answer is the N best beams, finished
/// (EOS or a stop token id) or not, ranked by score = summed log-probability / length^LengthPenalty, where length counts
/// the prompt and the generated tokens but not a final EOS (vLLM's and transformers' rule). Nothing is sampled, so
/// temperature, top_p, top_k, min_p and seed play no part; what would change the distribution or the text (penalties,
/// logit_bias, allowed_token_ids, bad_words, stop strings, min_tokens, structured outputs, prompt_logprobs) is refused.
public sealed record BeamSearchParams
{
    /// Above 1 favours longer answers, below 1 shorter ones; 1 ranks by the mean log-probability per token.
    public float LengthPenalty { get; init; } = 1f;

    /// The most beams a search keeps: each step asks for 2 x beams alternatives per beam, and the engine lists at most
    /// SamplingParams.MaxLogprobs.
    public const int MaxBeams = SamplingParams.MaxLogprobs / 2;

    /// A finished or unfinished beam's rank: higher is better.
    public double Score(double cumulativeLogprob, int promptTokens, int generatedTokens, bool endsWithEos) =>
        cumulativeLogprob / Math.Pow(promptTokens + generatedTokens - (endsWithEos ? 1 : 0), LengthPenalty);
}
