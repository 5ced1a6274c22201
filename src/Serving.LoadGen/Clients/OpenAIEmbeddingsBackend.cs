using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Serving.LoadGen.Datasets;
using Serving.LoadGen.Runner;

namespace Serving.LoadGen.Clients;

/// The OpenAI embeddings API (vLLM's bench backend openai-embeddings): POST /v1/embeddings, one input per request,
/// the vector as base64 (the SDKs' default). An embedding arrives whole, so a request's TTFT is its latency; it
/// generates no tokens (output length and TPOT are 0) and its prompt tokens are the server's usage.
internal sealed class OpenAIEmbeddingsBackend : IGenerationBackend
{
    readonly HttpClient _http;

    public OpenAIEmbeddingsBackend(Uri baseUrl, string? apiKey) => _http = ApiHttpClient.Create(baseUrl, apiKey);

    public Task<ServerInfo> GetServerInfoAsync(string? model, CancellationToken cancellationToken) =>
        ModelCards.FetchAsync(_http, model, cancellationToken);

    public async Task<RequestOutcome> SendAsync(BenchRequest request, GenerationSettings settings, CancellationToken cancellationToken)
    {
        var body = new JsonObject
        {
            ["model"] = request.Model ?? settings.Model,
            ["input"] = request.Prompt.Text is { } text ? text : new JsonArray(request.Prompt.TokenIds!.Select(id => (JsonNode)id).ToArray()),
            ["encoding_format"] = "base64",
        };
        using var message = new HttpRequestMessage(HttpMethod.Post, "v1/embeddings")
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var response = await _http.SendAsync(message, cancellationToken);
            var answer = await response.Content.ReadAsStringAsync(cancellationToken);
            var latency = Stopwatch.GetElapsedTime(started).TotalSeconds;
            if (!response.IsSuccessStatusCode)
                return RequestOutcome.Failed(request.Index, 0, $"HTTP {(int)response.StatusCode}: {OpenAIBackend.ErrorText(answer)}");
            var json = JsonNode.Parse(answer);
            if (json?["data"] is not JsonArray { Count: 1 } data || data[0]?["embedding"] is null)
                return RequestOutcome.Failed(request.Index, 0, "the answer carries no embedding");
            var promptTokens = json["usage"]?["prompt_tokens"]?.GetValue<int>() ?? request.PromptLength;
            return new RequestOutcome
            {
                Index = request.Index, Success = true, PromptLength = promptTokens, OutputTokens = 0, Ttft = latency, Latency = latency,
            };
        }
        catch (Exception error) when (error is HttpRequestException or IOException or System.Text.Json.JsonException or InvalidOperationException)
        {
            return RequestOutcome.Failed(request.Index, 0, $"{error.GetType().Name}: {error.Message}");
        }
    }

    public ValueTask DisposeAsync()
    {
        _http.Dispose();
        return ValueTask.CompletedTask;
    }
}
