using System.Text.Json.Nodes;

namespace Serving.LoadGen.Clients;

/// GET /v1/models: the served model's card. Besides OpenAI's fields we read vLLM-style extra fields in
/// snake_case (max_model_len, and our server's model facts: num_key_value_heads, kv_bytes_per_token,
/// kv_capacity_tokens, ...), at the card's top level or in a nested "model_info" object; absent ones stay null.
internal static class ModelCards
{
    public static async Task<ServerInfo> FetchAsync(HttpClient http, string? model, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync("v1/models", cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"GET /v1/models: HTTP {(int)response.StatusCode}: {OpenAIBackend.ErrorText(body)}");
        var cards = (JsonNode.Parse(body)?["data"] as JsonArray)?.OfType<JsonObject>().ToArray() ?? [];
        var card = cards.FirstOrDefault(c => model is null || Str(c, "id") == model)
            ?? throw new ArgumentException(model is null ? "the server lists no model" : $"the server does not serve '{model}' (it lists {string.Join(", ", cards.Select(c => Str(c, "id")))})");
        return Parse(card);
    }

    public static ServerInfo Parse(JsonObject card)
    {
        var info = card["model_info"] as JsonObject ?? card;
        return new ServerInfo
        {
            ModelId = Str(card, "id") ?? "",
            MaxModelLen = Int(card, "max_model_len") ?? Int(info, "max_model_len"),
            VocabSize = Int(info, "vocab_size"),
            NumAttentionHeads = Int(info, "num_attention_heads"),
            NumKVHeads = Int(info, "num_key_value_heads"),
            HeadDim = Int(info, "head_dim"),
            Dtype = Str(info, "dtype"),
            BlockSize = Int(info, "block_size"),
            KVBytesPerToken = Long(info, "kv_bytes_per_token"),
            KVCapacityTokens = Long(info, "kv_capacity_tokens"),
        };
    }

    static string? Str(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
    static int? Int(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue(out int i) ? i : null;
    static long? Long(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue(out long l) ? l : null;
}
