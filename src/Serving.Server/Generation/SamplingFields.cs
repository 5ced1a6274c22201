namespace Serving.Server.Generation;

/// A request's sampling fields as both APIs define them (OpenAI JSON and serving.v1 protobuf read theirs
/// into this), before any defaults are applied: null means "not given". SamplingRules checks them
/// against the same limits for both protocols and turns them into the engine's SamplingParams.
internal sealed record SamplingFields
{
    /// The completion budget the request gave (max_tokens, or chat's max_completion_tokens).
    public int? MaxTokens { get; init; }
    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public int? TopK { get; init; }
    public float? MinP { get; init; }
    public int? N { get; init; }
    public long? Seed { get; init; }
    public float? PresencePenalty { get; init; }
    public float? FrequencyPenalty { get; init; }
    public float? RepetitionPenalty { get; init; }
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }
    public IReadOnlyList<int>? AllowedTokenIds { get; init; }
    public IReadOnlyList<string> BadWords { get; init; } = [];
    public IReadOnlyList<string> Stop { get; init; } = [];
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    public int? MinTokens { get; init; }
    public bool? IgnoreEos { get; init; }
    /// null: no log-probabilities; 0: the chosen token's; k: also the top k alternatives.
    public int? Logprobs { get; init; }
    /// null: no prompt log-probabilities; k: each prompt token's and the top k alternatives (vLLM's prompt_logprobs).
    public int? PromptLogprobs { get; init; }
    public bool? SkipSpecialTokens { get; init; }
    public bool? IncludeStopStrInOutput { get; init; }
    /// The output constraint (JSON Schema, any JSON object, regex, choice), already compiled once; null: free text.
    public Serving.Engine.Grammar.StructuredOutputsParams? StructuredOutputs { get; init; }
    /// Beam search over n beams instead of sampling (vLLM's use_beam_search), with its length_penalty.
    public bool? UseBeamSearch { get; init; }
    public float? LengthPenalty { get; init; }
}
