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

    /// The two sides and their field names, in whichever of vLLM's spellings the request used (text_1 / text_2 when none);
    /// two spellings at once are a 400 naming the second.
    public (JsonElement? Left, string LeftName, JsonElement? Right, string RightName) Sides()
    {
        if (Given(Items) && Given(Documents))
            throw Errors.ApiException.BadRequest("Give the queries' pairs as items or as documents, not both.", "documents");
        var (right, rightName) = Given(Items) ? (Items, "items") : (Documents, "documents");
        (JsonElement? Left, string LeftName, JsonElement? Right, string RightName)[] spellings =
            [(Text1, "text_1", Text2, "text_2"), (Data1, "data_1", Data2, "data_2"), (Queries, "queries", right, rightName)];
        var given = spellings.Where(s => Given(s.Left) || Given(s.Right)).ToList();
        if (given.Count > 1)
            throw Errors.ApiException.BadRequest($"Give the pairs one way: {given[0].LeftName} and {given[0].RightName}, or " +
                $"{given[1].LeftName} and {given[1].RightName}, not both.", Given(given[1].Left) ? given[1].LeftName : given[1].RightName);
        return given.Count == 1 ? given[0] : spellings[0];
    }

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
