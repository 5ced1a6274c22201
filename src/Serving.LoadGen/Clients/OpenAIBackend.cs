using System.Text;
using System.Text.Json.Nodes;
using Serving.LoadGen.Datasets;
using Serving.LoadGen.Runner;

namespace Serving.LoadGen.Clients;

/// The OpenAI HTTP API: POST /v1/completions (or /v1/chat/completions) streamed over SSE with usage and
/// vLLM's return_token_ids, so arrivals are seen per output chunk even when a token is half a character.
internal sealed class OpenAIBackend : IGenerationBackend
{
    readonly HttpClient _http;
    readonly bool _chat;

    public OpenAIBackend(Uri baseUrl, string? apiKey, bool chat)
    {
        _chat = chat;
        _http = ApiHttpClient.Create(baseUrl, apiKey);
    }

    public Task<ServerInfo> GetServerInfoAsync(string? model, CancellationToken cancellationToken) =>
        ModelCards.FetchAsync(_http, model, cancellationToken);

    public async Task<RequestOutcome> SendAsync(BenchRequest request, GenerationSettings settings, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, _chat ? "v1/chat/completions" : "v1/completions")
        {
            Content = new StringContent(Body(request, settings).ToJsonString(), Encoding.UTF8, "application/json"),
        };
        var timer = new StreamTimer();
        try
        {
            using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
                return Failed(request, $"HTTP {(int)response.StatusCode}: {ErrorText(await response.Content.ReadAsStringAsync(cancellationToken))}");
            return await ReadStreamAsync(request, response, timer, settings.OnText, cancellationToken);
        }
        catch (Exception error) when (error is HttpRequestException or IOException or FormatException or System.Text.Json.JsonException)
        {
            return Failed(request, $"{error.GetType().Name}: {error.Message}");
        }
    }

    async Task<RequestOutcome> ReadStreamAsync(BenchRequest request, HttpResponseMessage response, StreamTimer timer,
        Action<string>? onText, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var chunks = new SseChunkReader(_chat, timer, onText);
        while (!chunks.Done && await reader.ReadLineAsync(cancellationToken) is { } line)
            chunks.OnLine(line);
        if (chunks.Error is { } error) return Failed(request, $"stream error: {error}");
        if (!chunks.Done) return Failed(request, "stream ended without [DONE]");
        return RequestOutcome.Streamed(request.Index, timer, chunks.UsagePromptTokens ?? request.PromptLength, chunks.OutputTokens, chunks.Text);
    }

    JsonObject Body(BenchRequest request, GenerationSettings settings)
    {
        var body = new JsonObject
        {
            ["model"] = request.Model ?? settings.Model,
            ["temperature"] = settings.Temperature,
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
            ["ignore_eos"] = settings.IgnoreEos,
            ["return_token_ids"] = true,
        };
        if (_chat)
        {
            var text = request.Prompt.Text ?? throw new ArgumentException("the chat API takes text prompts: use --prompt-format text");
            body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = text });
            body["max_completion_tokens"] = request.OutputLength;
        }
        else
        {
            body["prompt"] = request.Prompt.Text is { } text ? text : new JsonArray(request.Prompt.TokenIds!.Select(id => (JsonNode)id).ToArray());
            body["max_tokens"] = request.OutputLength;
        }
        return body;
    }

    static RequestOutcome Failed(BenchRequest request, string error) => RequestOutcome.Failed(request.Index, 0, error);

    /// The message of an OpenAI error body, or the body itself.
    internal static string ErrorText(string body)
    {
        try
        {
            return JsonNode.Parse(body)?["error"]?["message"]?.GetValue<string>() ?? body;
        }
        catch (System.Text.Json.JsonException)
        {
            return body;
        }
    }

    public ValueTask DisposeAsync()
    {
        _http.Dispose();
        return ValueTask.CompletedTask;
    }
}
