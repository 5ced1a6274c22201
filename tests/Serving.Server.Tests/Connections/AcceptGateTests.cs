using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Serving.Server.Connections;
using Serving.Server.Options;
using Serving.Server.Tests.Support;
using MsOptions = Microsoft.Extensions.Options.Options;

namespace Serving.Server.Tests.Connections;

/// The accept gate over Kestrel's socket transport: at most Ceiling accepted connections are open at once, the next
/// accept waits (its client stays in the kernel's queue) until one of them closes, an unbound listener's waiting accept
/// ends, and the server's listeners accept through it.
public sealed class AcceptGateTests
{
    [Fact]
    public async Task AcceptsWaitAtTheCeilingUntilAConnectionCloses()
    {
        var limit = new ConnectionLimit(new ServerOptions { MaxConnections = 4 }, NullLogger<ConnectionLimit>.Instance);
        var gate = new AcceptGate(limit, MsOptions.Create(new SocketTransportOptions()), NullLoggerFactory.Instance);
        Assert.Equal(4 + 16, gate.Ceiling);
        var listener = await gate.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var clients = new List<Socket>();
        var accepted = new List<ConnectionContext>();
        try
        {
            for (var i = 0; i < gate.Ceiling + 5; i++)
            {
                var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await client.ConnectAsync((IPEndPoint)listener.EndPoint);   // completes in the kernel's queue
                clients.Add(client);
            }
            for (var i = 0; i < gate.Ceiling; i++) accepted.Add((await listener.AcceptAsync())!);
            Assert.Equal(gate.Ceiling, gate.Open);

            var next = listener.AcceptAsync().AsTask();
            await Task.Delay(300);
            Assert.False(next.IsCompleted, "a connection past the ceiling waits");
            accepted[0].Abort();
            await accepted[0].DisposeAsync();
            accepted.Add((await next.WaitAsync(TimeSpan.FromSeconds(10)))!);
            Assert.Equal(gate.Ceiling, gate.Open);

            var waiting = listener.AcceptAsync().AsTask();
            await listener.UnbindAsync();
            Assert.Null(await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        }
        finally
        {
            foreach (var connection in accepted.Skip(1)) { connection.Abort(); await connection.DisposeAsync(); }
            foreach (var client in clients) client.Dispose();
            await listener.DisposeAsync();
        }
        await WaitUntilAsync(() => gate.Open == 0, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task TheServersConnectionsGoThroughTheGate()
    {
        await using var server = await RunningServer.StartAsync();
        var gate = server.App.Services.GetRequiredService<AcceptGate>();
        using (var client = server.NewClient(RunningServer.ApiKey))
        {
            using var response = await client.GetAsync("/v1/models");   // the connection stays open for reuse
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.True(gate.Open >= 1, $"{gate.Open} connections open through the gate");
        }
        await WaitUntilAsync(() => gate.Open == 0, TimeSpan.FromSeconds(10));
    }

    static async Task WaitUntilAsync(Func<bool> condition, TimeSpan within)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < within, "condition not met in time");
            await Task.Delay(20);
        }
    }
}
