using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using Serving.Grpc.V1;

namespace Serving.LoadGen.Soak;

/// Sends soak requests, always streamed, over the OpenAI HTTP API and gRPC, and classifies how each ended.
/// An abandoned request is one whose client stops reading after a few chunks and closes the stream (HTTP) or
/// cancels the call (gRPC): the server must free its KV blocks, which the soak checks at the end.
internal sealed class SoakClient : IAsyncDisposable
{
    readonly HttpClient _http;
    readonly GrpcChannel? _channel;
    readonly Generation.GenerationClient? _grpc;
    readonly Metadata _headers = [];
    readonly string _model;

    public SoakClient(Uri httpUrl, Uri? grpcUrl, string? apiKey, string model)
    {
        _model = model;
        var handler = new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, MaxResponseDrainSize = 0 };
        _http = new HttpClient(handler) { BaseAddress = httpUrl, Timeout = TimeSpan.FromMinutes(5) };
        if (apiKey is not null)
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
            _headers.Add("authorization", $"Bearer {apiKey}");
        }
        if (grpcUrl is null) return;
        _channel = GrpcChannel.ForAddress(grpcUrl, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true },
        });
        _grpc = new Generation.GenerationClient(_channel);
    }

    public Task<SoakOutcome> SendAsync(SoakRequest request, CancellationToken cancellationToken) =>
        request.IsGrpc ? SendGrpcAsync(request, cancellationToken) : SendHttpAsync(request, cancellationToken);

    async Task<SoakOutcome> SendHttpAsync(SoakRequest request, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, request.IsChat ? "v1/chat/completions" : "v1/completions")
        {
            Content = new StringContent(HttpBody(request).ToJsonString(), Encoding.UTF8, "application/json"),
        };
        try
        {
            using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            var status = (int)response.StatusCode;
            if (status >= 500) return new(request, SoakResult.ServerError, $"HTTP {status}");
            if (status >= 400) return new(request, SoakResult.Refused, $"HTTP {status}");
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
            var chunks = 0;
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                if (line == "data: [DONE]") return new(request, SoakResult.Completed);
                if (line.Contains("\"error\"", StringComparison.Ordinal) && JsonNode.Parse(line[6..])?["error"] is { } error)
                    return new(request, SoakResult.ServerError, $"stream error: {error["message"]}");
                if (++chunks == request.AbandonAfterChunks) return new(request, SoakResult.Abandoned);
            }
            return new(request, SoakResult.ServerError, "stream ended without [DONE]");
        }
        catch (Exception error) when (error is HttpRequestException or IOException && !cancellationToken.IsCancellationRequested)
        {
            return new(request, SoakResult.TransportError, error.Message);
        }
    }

    JsonObject HttpBody(SoakRequest request)
    {
        var body = new JsonObject
        {
            ["model"] = _model, ["stream"] = true, ["n"] = request.N, ["temperature"] = 1.0,
            ["stop"] = new JsonArray([.. request.Stop.Select(s => (JsonNode)s)]),
        };
        if (request.IsChat)
        {
            body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = request.Prompt });
            body["max_completion_tokens"] = request.MaxTokens;
        }
        else
        {
            body["prompt"] = request.Prompt;
            body["max_tokens"] = request.MaxTokens;
        }
        return body;
    }

    async Task<SoakOutcome> SendGrpcAsync(SoakRequest request, CancellationToken cancellationToken)
    {
        if (_grpc is null) throw new InvalidOperationException("no gRPC address");
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            using var call = _grpc.Generate(GrpcBody(request), _headers, cancellationToken: abandon.Token);
            var chunks = 0;
            await foreach (var response in call.ResponseStream.ReadAllAsync(abandon.Token))
            {
                if (response.ResponseCase == GenerateResponse.ResponseOneofCase.Final) return new(request, SoakResult.Completed);
                if (++chunks == request.AbandonAfterChunks)
                {
                    await abandon.CancelAsync();
                    return new(request, SoakResult.Abandoned);
                }
            }
            return new(request, SoakResult.ServerError, "stream ended without its final message");
        }
        catch (RpcException error) when (!cancellationToken.IsCancellationRequested)
        {
            var result = error.StatusCode switch
            {
                StatusCode.Internal or StatusCode.Unknown or StatusCode.DataLoss => SoakResult.ServerError,
                StatusCode.Unavailable or StatusCode.Cancelled => SoakResult.TransportError,
                _ => SoakResult.Refused,
            };
            return new(request, result, $"gRPC {error.StatusCode}: {error.Status.Detail}");
        }
    }

    GenerateRequest GrpcBody(SoakRequest request)
    {
        var generate = new GenerateRequest
        {
            Model = _model,
            Sampling = new SamplingParameters { MaxTokens = request.MaxTokens, N = request.N, Temperature = 1, Stop = { request.Stop } },
        };
        if (request.IsChat) generate.Chat = new ChatInput { Messages = { new ChatMessage { Role = "user", Content = request.Prompt } } };
        else generate.Text = request.Prompt;
        return generate;
    }

    public ValueTask DisposeAsync()
    {
        _http.Dispose();
        _channel?.Dispose();
        return ValueTask.CompletedTask;
    }
}
