using System.ClientModel;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using Serving.Engine;
using Serving.Engine.Model;
using Serving.Server.Engine;

namespace Serving.Server.Tests.Support;

/// The real server (ServerApp) on a free loopback port, serving the llama-gqa fixture as "tiny" behind
/// an API key, reached through real sockets; its gRPC API listens on a second free port (RunningServer.Grpc.cs).
public sealed partial class RunningServer : IAsyncDisposable
{
    public const string ApiKey = "test-key";
    public const string Model = "tiny";

    RunningServer(WebApplication app, Uri baseAddress)
    {
        App = app;
        BaseAddress = baseAddress;
        Http = NewClient(ApiKey);
    }

    public WebApplication App { get; }
    public Uri BaseAddress { get; }
    public HttpClient Http { get; }
    public ILlmEngine Engine => App.Services.GetRequiredService<ILlmEngine>();

    /// model: a fixture folder's name, a checkpoint folder's path, a preset shape with random weights (tiny-gqa: 4096
    /// tokens of context), or null for the embedded default model. servedModelName null serves the model under its default name
    /// (the --model path).
    public static async Task<RunningServer> StartAsync(string[]? extraArgs = null, EngineFactory? engineFactory = null,
        string? model = "llama-gqa", string? servedModelName = Model)
    {
        extraArgs ??= [];
        string[] modelArgs = model is null ? [] : ["--model", ModelPresets.IsPreset(model) || Path.IsPathRooted(model) ? model : Fixtures.Dir(model)];
        string[] args = ["--host", "127.0.0.1", "--port", "0", .. modelArgs,
            .. servedModelName is null ? Array.Empty<string>() : ["--served-model-name", servedModelName],
            "--api-key", ApiKey, "--grpc-port", "0",
            .. extraArgs.Contains("--max-request-body-bytes") ? Array.Empty<string>() : ["--max-request-body-bytes", "65536"],
            .. extraArgs];
        var app = ServerApp.Build(args, engineFactory ?? DefaultEngine.Create);
        await app.StartAsync();
        var server = new RunningServer(app, HttpAddress(app));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await server.Engine.WaitUntilReadyAsync(timeout.Token);
        return server;
    }

    public HttpClient NewClient(string? apiKey)
    {
        // No draining of unread response bodies: disposing a response closes its connection, as a client
        // that goes away does (the default reads up to 1 MiB first to reuse the connection).
        var handler = new SocketsHttpHandler { MaxResponseDrainSize = 0 };
        var client = new HttpClient(handler) { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (apiKey is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return client;
    }

    public OpenAIClient OpenAI() =>
        new(new ApiKeyCredential(ApiKey), new OpenAIClientOptions { Endpoint = new Uri(BaseAddress, "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });

    public async Task<(int Status, JsonNode? Body)> PostAsync(string path, object body, CancellationToken cancellationToken = default)
    {
        using var response = await Http.PostAsync(path, Json(body), cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        return ((int)response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    /// Opens a streaming request; the caller disposes the response (which closes the connection mid-stream).
    public async Task<(HttpResponseMessage Response, SseReader Events)> StreamAsync(string path, object body,
        CancellationToken cancellationToken = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json(body) };
        var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        return (response, new SseReader(await response.Content.ReadAsStreamAsync(cancellationToken)));
    }

    /// Opens a streaming GET (a Responses stream read again); the caller disposes the response.
    public async Task<(HttpResponseMessage Response, SseReader Events)> StreamGetAsync(string path, CancellationToken cancellationToken = default)
    {
        var response = await Http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        return (response, new SseReader(await response.Content.ReadAsStreamAsync(cancellationToken)));
    }

    public static StringContent Json(object body) =>
        new(body as string ?? JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    /// Waits until the engine's stats satisfy the condition (they change once per engine step).
    public async Task<EngineStats> WaitForStatsAsync(Func<EngineStats, bool> condition, double seconds = 10)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var stats = Engine.GetStats();
            if (condition(stats)) return stats;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"engine stats never matched: {stats}");
            await Task.Delay(5);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        _grpcChannel?.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

/// One server shared by the tests of the "server" collection (they run one after another).
public sealed class SharedServer : IAsyncLifetime
{
    public RunningServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await RunningServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (Server is not null) await Server.DisposeAsync();
    }
}

[CollectionDefinition("server")]
public sealed class SharedServerCollection : ICollectionFixture<SharedServer>;
