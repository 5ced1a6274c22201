using System.Text.Json;

namespace Serving.Server.OpenAI.Responses;

/// POST /v1/responses: OpenAI's Responses API, plus the sampling extras vLLM takes on it. Every field is optional;
/// polymorphic fields stay JsonElement and are read by ResponsesPlan, so a wrong shape is a 400 naming the field.
internal sealed record ResponsesRequest
{
    public string? Model { get; init; }
    /// A string (one user message) or a list of items: messages, function calls and their outputs, reasoning.
    public JsonElement? Input { get; init; }
    /// A system message before the conversation; not carried over to a response that continues this one.
    public string? Instructions { get; init; }
    /// Continue a stored response: its input and output come before this input.
    public string? PreviousResponseId { get; init; }
    /// Keep the response for GET /v1/responses/{id} and previous_response_id (default true, as OpenAI).
    public bool? Store { get; init; }
    public bool? Stream { get; init; }
    /// Answered at once as queued, generated apart (BackgroundResponses), read back with GET; needs store. With stream,
    /// its events are streamed, and again from any point with GET ?stream=true&starting_after=N.
    public bool? Background { get; init; }
    public int? MaxOutputTokens { get; init; }
    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    /// Alternatives listed with each output token's log-probability (0-20).
    public int? TopLogprobs { get; init; }
    /// Extra output to include: "message.output_text.logprobs" is the one this server has.
    public IReadOnlyList<string>? Include { get; init; }
    /// A list of {"type": "function", "name", "description", "parameters", "strict"}.
    public JsonElement? Tools { get; init; }
    /// "none", "auto", "required" or {"type": "function", "name": ...}.
    public JsonElement? ToolChoice { get; init; }
    public bool? ParallelToolCalls { get; init; }
    /// {"format": {"type": "text" | "json_object" | "json_schema", ...}}.
    public JsonElement? Text { get; init; }
    /// {"effort", "summary"}: echoed back; the effort is also the chat template's reasoning_effort (gpt-oss reads it).
    public JsonElement? Reasoning { get; init; }
    public Dictionary<string, string>? Metadata { get; init; }
    public string? User { get; init; }
    /// vLLM's: the response's id as the client names it (the X-Request-Id header wins), e.g. to find it again with GET.
    public string? RequestId { get; init; }
    /// "disabled" (the default): a conversation longer than the context is refused; "auto": its oldest messages are
    /// dropped until it fits.
    public string? Truncation { get; init; }
    /// Server-side conversations and stored prompts: refused (this server keeps responses, not conversations).
    public JsonElement? Conversation { get; init; }
    public JsonElement? Prompt { get; init; }

    // vLLM's extras, as on the chat API
    public int? TopK { get; init; }
    public float? MinP { get; init; }
    public long? Seed { get; init; }
    public JsonElement? Stop { get; init; }
    public IReadOnlyList<int>? StopTokenIds { get; init; }
    public float? PresencePenalty { get; init; }
    public float? FrequencyPenalty { get; init; }
    public float? RepetitionPenalty { get; init; }
    public int? MinTokens { get; init; }
    public bool? IgnoreEos { get; init; }
    public JsonElement? StructuredOutputs { get; init; }
    public JsonElement? ChatTemplateKwargs { get; init; }
    public int? Priority { get; init; }
    public string? CacheSalt { get; init; }
}
