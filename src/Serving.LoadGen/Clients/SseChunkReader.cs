using System.Text.Json.Nodes;

namespace Serving.LoadGen.Clients;

/// Folds the `data:` events of an OpenAI stream (completions or chat chunks) into one request's result:
/// output arrivals on the timer, generated text, token counts, and the error event a server sends when a
/// stream fails after it began. A reasoning model's thinking (chat's delta.reasoning, or the older
/// delta.reasoning_content) is output like its content, as vLLM's benchmark counts it.
internal sealed class SseChunkReader(bool chat, StreamTimer timer, Action<string>? onText = null)
{
    readonly System.Text.StringBuilder _text = new();
    int _tokenIdsSeen;

    public string Text => _text.ToString();
    public int? UsageCompletionTokens { get; private set; }
    public int? UsagePromptTokens { get; private set; }
    public string? Error { get; private set; }
    public bool Done { get; private set; }

    /// Tokens generated: the usage figure when the server sent one, else token ids seen, else output chunks.
    public int OutputTokens => UsageCompletionTokens ?? (_tokenIdsSeen > 0 ? _tokenIdsSeen : timer.NumChunks);

    /// Handles one SSE line; other lines (comments, event names, blank separators) are ignored.
    public void OnLine(string line)
    {
        if (!line.StartsWith("data:", StringComparison.Ordinal)) return;
        var data = line[5..].Trim();
        if (data == "[DONE]")
        {
            Done = true;
            return;
        }
        OnChunk(JsonNode.Parse(data) as JsonObject ?? throw new FormatException($"stream chunk is not a JSON object: {data}"));
    }

    void OnChunk(JsonObject chunk)
    {
        if (chunk["error"] is JsonNode error)
        {
            Error = error["message"]?.GetValue<string>() ?? error.ToJsonString();
            return;
        }
        if (chunk["usage"] is JsonObject usage)
        {
            UsageCompletionTokens = usage["completion_tokens"]?.GetValue<int>();
            UsagePromptTokens = usage["prompt_tokens"]?.GetValue<int>();
        }
        if (chunk["choices"] is not JsonArray { Count: > 0 } choices || choices[0] is not JsonObject choice) return;
        var text = chat ? ChatText(choice["delta"]) : choice["text"]?.GetValue<string>();
        var numIds = (choice["token_ids"] as JsonArray)?.Count ?? 0;
        // a chunk carries output when it has text, or token ids whose bytes do not yet complete a character
        if (string.IsNullOrEmpty(text) && numIds == 0) return;
        timer.OnOutput();
        _text.Append(text);
        if (!string.IsNullOrEmpty(text)) onText?.Invoke(text);
        _tokenIdsSeen += numIds;
    }

    static string? ChatText(JsonNode? delta) =>
        (delta?["reasoning"] ?? delta?["reasoning_content"])?.GetValue<string>() + delta?["content"]?.GetValue<string>() is { Length: > 0 } text
            ? text : null;
}
