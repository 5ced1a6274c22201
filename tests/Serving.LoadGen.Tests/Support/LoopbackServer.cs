using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Serving.Engine;
using Serving.Server;
using Serving.Server.Engine;

namespace Serving.LoadGen.Tests.Support;

/// The real server (ServerApp, as Program.cs runs it) serving a fixture on a free loopback port.
public sealed class LoopbackServer : IAsyncDisposable
{
    readonly WebApplication _app;
    readonly int? _grpcPort;

    LoopbackServer(WebApplication app, int? grpcPort) => (_app, _grpcPort) = (app, grpcPort);

    /// The OpenAI HTTP address.
    public Uri BaseUrl => new(_app.Urls.Single(url => _grpcPort is null || !url.EndsWith($":{_grpcPort}", StringComparison.Ordinal)));

    /// The gRPC address (h2c), when started with gRPC.
    public Uri GrpcUrl => new($"http://127.0.0.1:{_grpcPort ?? throw new InvalidOperationException("started without gRPC")}");

    public static async Task<LoopbackServer> StartAsync(string fixture, string servedName, bool grpc = false)
    {
        var grpcPort = grpc ? FreePort() : (int?)null;
        string[] args = ["--host", "127.0.0.1", "--port", "0", "--model", Fixtures.Dir(fixture), "--served-model-name", servedName,
            "--kv-cache-memory", (8 << 20).ToString(), .. grpcPort is { } port ? new[] { "--grpc-port", port.ToString() } : []];
        var app = ServerApp.Build(args, DefaultEngine.Create);
        await app.StartAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await app.Services.GetRequiredService<ILlmEngine>().WaitUntilReadyAsync(timeout.Token);
        return new LoopbackServer(app, grpcPort);
    }

    static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
