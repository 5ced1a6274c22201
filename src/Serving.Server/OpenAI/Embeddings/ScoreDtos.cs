using System.Text.Json;
using System.Text.Json.Serialization;

namespace Serving.Server.OpenAI.Embeddings;

/// vLLM's /score body: text_1 and text_2 (a string or strings each): one text_1 against every text_2, or pairs.
internal sealed record ScoreRequest
{
    public string? Model { get; init; }
    [JsonPropertyName("text_1")] public JsonElement? Text1 { get; init; }   // the naming policy would write text1
    [JsonPropertyName("text_2")] public JsonElement? Text2 { get; init; }
    public int? TruncatePromptTokens { get; init; }
    public int? Priority { get; init; }
}

internal sealed record ScoreResponse(string Id, long Created, string Model, IReadOnlyList<ScoreItem> Data, EmbeddingUsage Usage)
{
    public string Object => "list";
}

internal sealed record ScoreItem(int Index, double Score)
{
    public string Object => "score";
}

/// vLLM's /rerank (Jina's and Cohere's shape): a query, documents, top_n (0 or absent: all).
internal sealed record RerankRequest
{
    public string? Model { get; init; }
    public string? Query { get; init; }
    public JsonElement? Documents { get; init; }
    public int? TopN { get; init; }
    public int? TruncatePromptTokens { get; init; }
    public int? Priority { get; init; }
}

internal sealed record RerankResponse(string Id, string Model, RerankUsage Usage, IReadOnlyList<RerankResult> Results);

internal sealed record RerankUsage(int TotalTokens);

internal sealed record RerankResult(int Index, RerankDocument Document, double RelevanceScore);

internal sealed record RerankDocument(string Text);
