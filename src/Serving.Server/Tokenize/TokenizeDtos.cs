using System.Text.Json;
using System.Text.Json.Serialization;

namespace Serving.Server.Tokenize;

/// vLLM's /tokenize body: either a completions-style "prompt" or chat-style "messages".
internal sealed record TokenizeRequest
{
    public string? Model { get; init; }
    public string? Prompt { get; init; }
    public JsonElement? Messages { get; init; }
    public bool? AddSpecialTokens { get; init; }
    public bool? AddGenerationPrompt { get; init; }
    public bool? ContinueFinalMessage { get; init; }
    public JsonElement? ChatTemplateKwargs { get; init; }
    public string? ChatTemplate { get; init; }
    /// Tools for the chat template, as in a chat request.
    public JsonElement? Tools { get; init; }
    public bool? ReturnTokenStrs { get; init; }
}

internal sealed record TokenizeResponse(int Count, int MaxModelLen, IReadOnlyList<int> Tokens,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] IReadOnlyList<string>? TokenStrs);

internal sealed record DetokenizeRequest(string? Model, IReadOnlyList<int>? Tokens);

internal sealed record DetokenizeResponse(string Prompt);
