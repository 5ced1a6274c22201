namespace Serving.Engine.Sampling;

/// How one request samples, in OpenAI/vLLM terms. Immutable; validated by Validate() at admission.
public sealed record SamplingParams
{
    public static readonly SamplingParams Greedy = new() { Temperature = 0 };

    /// Sequences to generate for the prompt (they share the prompt's KV blocks).
    public int N { get; init; } = 1;
    public int MaxTokens { get; init; } = 16;
    /// EOS and stop token ids are ignored until this many tokens were generated.
    public int MinTokens { get; init; }
    /// 0 means greedy (argmax).
    public float Temperature { get; init; } = 1f;
    public float TopP { get; init; } = 1f;
    /// 0 or -1 means no top-k.
    public int TopK { get; init; }
    public float MinP { get; init; }
    /// Makes sampling reproducible per request; null draws from the engine's generator.
    public long? Seed { get; init; }
    public float PresencePenalty { get; init; }
    public float FrequencyPenalty { get; init; }
    /// Multiplicative penalty on tokens seen in prompt or output (1 = off), as vLLM/transformers define it.
    public float RepetitionPenalty { get; init; } = 1f;
    /// Added to the logits of the given token ids before sampling (OpenAI: -100..100).
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }
    /// Only these token ids may be sampled (vLLM's allowed_token_ids); null: any.
    public IReadOnlyList<int>? AllowedTokenIds { get; init; }
    /// Words never to generate (vLLM's bad_words): the last token of each word's tokens is banned wherever the
    /// output already ends with the tokens before it.
    public IReadOnlyList<string> BadWords { get; init; } = [];
    public IReadOnlyList<string> Stop { get; init; } = [];
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    public bool IgnoreEos { get; init; }
    /// null: no log-probabilities; 0: the chosen token's only; k: also the top k alternatives.
    public int? Logprobs { get; init; }
    /// null: no prompt log-probabilities; k: each prompt token's log-probability given the tokens before it, its
    /// rank, and the top k alternatives at its position (vLLM's prompt_logprobs), from the raw logits. The first
    /// prompt token has none. Computing them bypasses the prefix cache for the request's first prefill.
    public int? PromptLogprobs { get; init; }
    public bool SkipSpecialTokens { get; init; } = true;
    /// Keep a matched stop string in the output text (vLLM's include_stop_str_in_output).
    public bool IncludeStopStringInOutput { get; init; }
    /// Constrains the output to a JSON Schema, any JSON object, a regex or a choice (null: free text).
    public Grammar.StructuredOutputsParams? StructuredOutputs { get; init; }
    /// Beam search over N beams instead of sampling (vLLM's use_beam_search); null: sample.
    public BeamSearchParams? BeamSearch { get; init; }

    /// Temperatures below this are taken as 0: dividing logits by them overflows float32 (vLLM's _SAMPLING_EPS).
    public const float GreedyTemperatureEpsilon = 1e-5f;

    /// The most top-N alternatives a request may ask for per token (vLLM's default max_logprobs).
    public const int MaxLogprobs = 20;

    public bool IsGreedy => Temperature < GreedyTemperatureEpsilon || TopK == 1;

    /// Throws InvalidRequestException (naming the parameter) when a value is out of its OpenAI/vLLM range.
    public void Validate() => SamplingParamsValidator.Validate(this);

    /// Validate(), plus every token id named by LogitBias, AllowedTokenIds and StopTokenIds must be below vocabSize.
    public void Validate(int vocabSize) => SamplingParamsValidator.Validate(this, vocabSize);
}
