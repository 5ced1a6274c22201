using System.Text.Json;
using System.Text.Json.Serialization;

namespace Serving.Server.OpenAI.Responses;

/// A response as OpenAI writes it (nulls included): its status and output items, its usage, and the request's
/// settings echoed back.
internal sealed record ResponseObject(string Id, long CreatedAt, string Status, string Model, IReadOnlyList<ResponseItem> Output,
    ResponseUsage? Usage)
{
    public string Object => "response";
    public bool Background { get; init; }
    public ResponseError? Error { get; init; }
    public IncompleteDetails? IncompleteDetails { get; init; }
    public string? Instructions { get; init; }
    public int? MaxOutputTokens { get; init; }
    public int? MaxToolCalls => null;
    public bool ParallelToolCalls { get; init; } = true;
    public string? PreviousResponseId { get; init; }
    public JsonElement? Reasoning { get; init; }
    public string ServiceTier => "auto";
    public bool Store { get; init; }
    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public int TopLogprobs { get; init; }
    public JsonElement? Text { get; init; }
    public JsonElement? ToolChoice { get; init; }
    public JsonElement? Tools { get; init; }
    public string Truncation { get; init; } = "disabled";
    public string? User { get; init; }
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();
}

internal sealed record ResponseUsage(int InputTokens, InputTokensDetails InputTokensDetails, int OutputTokens,
    OutputTokensDetails OutputTokensDetails, int TotalTokens);

internal sealed record InputTokensDetails(int CachedTokens);

internal sealed record OutputTokensDetails(int ReasoningTokens);

/// Why a response stopped short: "max_output_tokens".
internal sealed record IncompleteDetails(string Reason);

internal sealed record ResponseError(string Code, string Message);

/// GET /v1/responses/{id}/input_items: a response's input, oldest first.
internal sealed record ItemList(IReadOnlyList<ResponseItem> Data, string? FirstId, string? LastId, bool HasMore)
{
    public string Object => "list";
}

/// DELETE /v1/responses/{id} (OpenAI's answer: the object is "response").
internal sealed record ResponseDeleted(string Id, bool Deleted)
{
    public string Object => "response";
}

/// One event of a streamed response ("response.output_text.delta", ...), numbered in order; each kind fills the
/// fields OpenAI gives it.
internal sealed record ResponseEvent(string Type, int SequenceNumber)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public ResponseObject? Response { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public int? OutputIndex { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? ItemId { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public int? ContentIndex { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public ResponseItem? Item { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public ContentPart? Part { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Delta { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Text { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Arguments { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Name { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public IReadOnlyList<ChatTokenLogprob>? Logprobs { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Code { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Message { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Param { get; init; }
}
