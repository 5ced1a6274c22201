using System.Text.Json;
using System.Text.Json.Serialization;

namespace Serving.Server.OpenAI.Pooling;

/// vLLM's /score body: text_1 and text_2 (a string or strings each): one text_1 against every text_2, or pairs. vLLM
/// also takes the pair as queries + documents, queries + items or data_1 + data_2.
internal sealed record ScoreRequest
{
    public string? Model { get; init; }
    [JsonPropertyName("text_1")] public JsonElement? Text1 { get; init; }   // the naming policy would write text1
    [JsonPropertyName("text_2")] public JsonElement? Text2 { get; init; }
    public JsonElement? Queries { get; init; }
    public JsonElement? Documents { get; init; }
    public JsonElement? Items { get; init; }
    [JsonPropertyName("data_1")] public JsonElement? Data1 { get; init; }
    [JsonPropertyName("data_2")] public JsonElement? Data2 { get; init; }
    public int? TruncatePromptTokens { get; init; }
    public int? Priority { get; init; }

    /// The two sides and their field names, in whichever of vLLM's spellings the request used (text_1 / text_2 when none).
    public (JsonElement? Left, string LeftName, JsonElement? Right, string RightName) Sides() =>
        Given(Text1) || Given(Text2) ? (Text1, "text_1", Text2, "text_2")
        : Given(Data1) || Given(Data2) ? (Data1, "data_1", Data2, "data_2")
        : Given(Queries) && Given(Items) ? (Queries, "queries", Items, "items")
        : Given(Queries) || Given(Documents) ? (Queries, "queries", Documents, "documents")
        : (Text1, "text_1", Text2, "text_2");

    static bool Given(JsonElement? field) => field is { ValueKind: not JsonValueKind.Null };
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

internal sealed record RerankUsage(int PromptTokens, int TotalTokens);

internal sealed record RerankResult(int Index, RerankDocument Document, double RelevanceScore);

internal sealed record RerankDocument(string Text);
