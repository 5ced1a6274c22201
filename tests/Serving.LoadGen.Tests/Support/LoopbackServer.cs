extern alias ServerAssembly;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Serving.Engine;
using ServerAssembly::Serving.Server;
using ServerAssembly::Serving.Server.Engine;
using ServerAssembly::Serving.Server.Grpc;

namespace Serving.LoadGen.Tests.Support;

/// The real server (ServerApp, as Program.cs runs it) serving a fixture on a free loopback port, and with
/// grpc its gRPC API on a second one (--grpc-port 0: the port Kestrel bound is read back from GrpcEndpoint).
public sealed class LoopbackServer : IAsyncDisposable
{
    readonly WebApplication _app;

    LoopbackServer(WebApplication app) => _app = app;

    /// The gRPC address (h2c); null when started without gRPC.
    Uri? BoundGrpcUrl => _app.Services.GetService<GrpcEndpoint>()?.Address;

    /// The OpenAI HTTP address: the bound address that is not the gRPC one.
    public Uri BaseUrl => _app.Urls.Select(url => new Uri(url)).Single(url => url != BoundGrpcUrl);

    public Uri GrpcUrl => BoundGrpcUrl ?? throw new InvalidOperationException("the server was started without gRPC");

    public static async Task<LoopbackServer> StartAsync(string fixture, string servedName, bool grpc = false, string[]? extraArgs = null)
    {
        string[] args = ["--host", "127.0.0.1", "--port", "0", "--model", Fixtures.Dir(fixture), "--served-model-name", servedName,
            "--kv-cache-memory", (8 << 20).ToString(), .. grpc ? ["--grpc-port", "0"] : Array.Empty<string>(), .. extraArgs ?? []];
        var app = ServerApp.Build(args, DefaultEngine.Create);
        await app.StartAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await app.Services.GetRequiredService<ILlmEngine>().WaitUntilReadyAsync(timeout.Token);
        return new LoopbackServer(app);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
