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

    LoopbackServer(WebApplication app) => _app = app;

    public Uri BaseUrl => new(_app.Urls.Single());

    public static async Task<LoopbackServer> StartAsync(string fixture, string servedName)
    {
        string[] args = ["--host", "127.0.0.1", "--port", "0", "--model", Fixtures.Dir(fixture), "--served-model-name", servedName,
            "--kv-cache-memory", (8 << 20).ToString()];
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
