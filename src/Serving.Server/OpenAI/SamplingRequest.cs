using System.Text.Json;

namespace Serving.Server.OpenAI;

/// The fields /v1/completions and /v1/chat/completions share (OpenAI's, plus vLLM's extras).
/// Every field is optional; absent means the documented default. Polymorphic fields stay JsonElement and
/// are checked by the mappers, so a wrong shape is a 400 naming the field.
internal abstract record SamplingRequest
{
    public string? Model { get; init; }
    public bool? Stream { get; init; }
    public StreamOptions? StreamOptions { get; init; }
    public int? MaxTokens { get; init; }
    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public int? TopK { get; init; }
    public float? MinP { get; init; }
    public int? N { get; init; }
    public long? Seed { get; init; }
    /// A string or a list of strings.
    public JsonElement? Stop { get; init; }
    public IReadOnlyList<int>? StopTokenIds { get; init; }
    /// Only these token ids may be sampled (vLLM's allowed_token_ids).
    public IReadOnlyList<int>? AllowedTokenIds { get; init; }
    /// Words never to generate (vLLM's bad_words).
    public IReadOnlyList<string>? BadWords { get; init; }
    public float? PresencePenalty { get; init; }
    public float? FrequencyPenalty { get; init; }
    public float? RepetitionPenalty { get; init; }
    /// Token id (as a string, OpenAI's format) to a bias in -100..100.
    public Dictionary<string, float>? LogitBias { get; init; }
    public bool? IgnoreEos { get; init; }
    public int? MinTokens { get; init; }
    public string? User { get; init; }
    /// vLLM's request_id: the client's id for the request, its response's id after the API's prefix (the X-Request-Id
    /// header wins over it).
    public string? RequestId { get; init; }
    public bool? ReturnTokenIds { get; init; }
    /// vLLM's return_tokens_as_token_ids: log-probability listings name tokens "token_id:{id}" instead of their text.
    public bool? ReturnTokensAsTokenIds { get; init; }

    /// Whether log-probability listings name tokens by id: the request's return_tokens_as_token_ids, else the server's
    /// --return-tokens-as-token-ids.
    public bool TokensAsTokenIds(Options.ServerOptions options) => ReturnTokensAsTokenIds ?? options.ReturnTokensAsTokenIds;
    public bool? AddSpecialTokens { get; init; }
    public bool? SkipSpecialTokens { get; init; }
    public bool? IncludeStopStrInOutput { get; init; }
    /// vLLM's prompt_logprobs: each prompt token's log-probability and the top k alternatives (whole answers only).
    public int? PromptLogprobs { get; init; }
    /// OpenAI's {"type": "text" | "json_object" | "json_schema", ...}.
    public JsonElement? ResponseFormat { get; init; }
    /// vLLM's {"json" | "regex" | "choice" | "json_object": ...}.
    public JsonElement? StructuredOutputs { get; init; }
    /// vLLM's older spellings of structured_outputs.
    public JsonElement? GuidedJson { get; init; }
    public JsonElement? GuidedRegex { get; init; }
    public JsonElement? GuidedChoice { get; init; }
    public JsonElement? GuidedGrammar { get; init; }
    /// vLLM's truncate_prompt_tokens: keep only the prompt's last k tokens (-1: the last max_model_len).
    public int? TruncatePromptTokens { get; init; }
    /// vLLM's priority under --scheduling-policy priority: lower is admitted first and preempted last.
    public int? Priority { get; init; }
    /// vLLM's cache_salt: prefix-cache blocks are shared only among requests of the same salt.
    public string? CacheSalt { get; init; }
    /// vLLM's use_beam_search: the n best of n beams instead of n samples.
    public bool? UseBeamSearch { get; init; }
    /// vLLM's length_penalty: a beam's score is its summed log-probability / length^length_penalty (beam search only).
    public float? LengthPenalty { get; init; }
}

/// include_usage: a last chunk with the request's usage; continuous_usage_stats (vLLM's), with it: every chunk carries
/// its choice's usage so far.
internal sealed record StreamOptions(bool? IncludeUsage, bool? ContinuousUsageStats)
{
    /// Whether a stream ends with a usage chunk and whether every chunk carries its choice's usage: the request's
    /// stream_options, the last chunk also under vLLM's --enable-force-include-usage (forced) for every stream.
    public static (bool Final, bool Continuous) UsageOf(StreamOptions? options, bool forced)
    {
        var final = options?.IncludeUsage == true || forced;
        return (final, final && options?.ContinuousUsageStats == true);
    }
}

/// POST /v1/completions.
internal sealed record CompletionRequest : SamplingRequest
{
    /// A string, a list of strings, a list of token ids, or a list of token-id lists.
    public JsonElement? Prompt { get; init; }
    public bool? Echo { get; init; }
    public string? Suffix { get; init; }
    /// Completions-style log-probabilities: the chosen token plus this many alternatives.
    public int? Logprobs { get; init; }
    public int? BestOf { get; init; }
}

/// POST /v1/chat/completions.
internal sealed record ChatRequest : SamplingRequest
{
    /// A list of {role, content} objects; content a string or a list of {type: "text", text} parts.
    public JsonElement? Messages { get; init; }
    public bool? Logprobs { get; init; }
    public int? TopLogprobs { get; init; }
    public int? MaxCompletionTokens { get; init; }
    public bool? AddGenerationPrompt { get; init; }
    /// End the prompt inside the final (assistant) message, for the model to continue it: a prefill of its answer.
    public bool? ContinueFinalMessage { get; init; }
    /// Extra variables for the chat template (an object).
    public JsonElement? ChatTemplateKwargs { get; init; }
    /// OpenAI's reasoning_effort (none, minimal, low, medium, high, xhigh): the chat template's reasoning_effort variable
    /// (gpt-oss's template writes it into the system message) unless chat_template_kwargs sets one.
    public string? ReasoningEffort { get; init; }
    /// A request's own chat template: refused unless the server trusts request templates.
    public string? ChatTemplate { get; init; }
    /// A list of {"type": "function", "function": {name, description, parameters, strict}}.
    public JsonElement? Tools { get; init; }
    /// "none", "auto", "required" or {"type": "function", "function": {"name": ...}}.
    public JsonElement? ToolChoice { get; init; }
    public bool? ParallelToolCalls { get; init; }
    /// With a reasoning parser: whether the answer shows its thinking ("reasoning"); false leaves it out (vLLM's
    /// include_reasoning, default true). The content never holds it.
    public bool? IncludeReasoning { get; init; }
}
