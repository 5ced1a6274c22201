using System.Diagnostics;
using System.Net.Sockets;
using Grpc.Net.Client;
using Serving.Server.Connections;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Connections;

/// Idle connections cannot exhaust the server's file descriptors: connections over --max-connections (by
/// default derived from the descriptor limit) are closed as they arrive, a connection that sends nothing is
/// closed after --timeout-keep-alive, shedding is logged in a few lines, and both listeners keep accepting.
/// The attack runs against the server process under `ulimit -n 1024`, with more idle connections than that.
[Collection(ConnectionFloodCollection.Name)]
public sealed class ConnectionLimitTests
{
    const int DescriptorLimit = 1024;

    [Fact]
    public async Task IdleConnectionsBeyondTheDescriptorLimitNeitherKillTheServerNorStopItsListeners()
    {
        await using var server = ServerProcess.Start(["--model", Fixtures.Dir("llama-gqa"), "--timeout-keep-alive", "2"], DescriptorLimit);
        await server.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));
        var max = ConnectionLimit.FromDescriptorLimit(DescriptorLimit);
        Assert.Contains($"Serving at most {max} connections", server.Output);

        var attack = new List<Socket>();
        var mostDescriptors = 0;
        try
        {
            // More idle connections than the process has descriptors, to both ports.
            for (var i = 0; i < 1500; i++)
            {
                attack.Add(await ConnectAsync(i % 3 == 0 ? server.GrpcAddress : server.BaseAddress));
                if (i % 100 == 0) mostDescriptors = Math.Max(mostDescriptors, server.OpenFiles);
            }
            mostDescriptors = Math.Max(mostDescriptors, server.OpenFiles);
            Assert.False(server.HasExited, server.Output);
            Assert.True(mostDescriptors < DescriptorLimit - 100, $"{mostDescriptors} descriptors open");

            // The silent connections are closed after the keep-alive timeout: real requests get through again,
            // over HTTP and gRPC, while the attacker still holds its sockets.
            await AssertServesAsync(server, within: TimeSpan.FromSeconds(20));
        }
        finally
        {
            foreach (var socket in attack) socket.Dispose();
        }
        var shedLines = server.Output.Split('\n').Count(l => l.Contains("Connection limit of", StringComparison.Ordinal));
        Assert.InRange(shedLines, 1, 5);
        await AssertServesAsync(server, within: TimeSpan.FromSeconds(10));
        Assert.True(server.OpenFiles < 400, $"{server.OpenFiles} descriptors open after the attack");
    }

    [Fact]
    public async Task AConnectionThatSendsNothingIsClosedAfterTheKeepAliveTimeout()
    {
        await using var server = ServerProcess.Start(["--model", Fixtures.Dir("llama-gqa"), "--timeout-keep-alive", "2"]);
        await server.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));
        foreach (var address in new[] { server.BaseAddress, server.GrpcAddress })
        {
            using var socket = await ConnectAsync(address);
            var clock = Stopwatch.StartNew();
            var buffer = new byte[256];
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            // HTTP/1.1 closes silently; HTTP/2 may first send its SETTINGS and GOAWAY frames.
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token) > 0) { }
            Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(6));
        }
    }

    static async Task<Socket> ConnectAsync(Uri address)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(address.Host, address.Port);
        return socket;
    }

    static async Task AssertServesAsync(ServerProcess server, TimeSpan within)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
                using var response = await http.PostAsync("/v1/completions", RunningServer.Json(new { prompt = "Hello", max_tokens = 2 }));
                Assert.Equal(200, (int)response.StatusCode);
                using var channel = GrpcChannel.ForAddress(server.GrpcAddress);
                var result = await GenerateResult.ReadAsync(new Serving.Grpc.V1.Generation.GenerationClient(channel),
                    new Serving.Grpc.V1.GenerateRequest { Text = "Hello", Sampling = new() { MaxTokens = 2 } });
                Assert.Equal(2, (int)result.Final.Usage.CompletionTokens);
                return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or global::Grpc.Core.RpcException && clock.Elapsed < within)
            {
                await Task.Delay(250);
            }
        }
    }
}

/// The flood counts the server process's descriptors while they pile up and drain: tests running beside it (browsers,
/// other servers) slow the server's closing of shed connections and move that count (1,023 of 1,024 open in one CI
/// run on 2 cores; under its margin alone), so this collection runs by itself, after the parallel ones.
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ConnectionFloodCollection
{
    public const string Name = "connection flood";
}
