using Grpc.Core;
using Serving.Grpc.V1;
using Serving.Server.Engine;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Grpc;

/// A failure after the stream began ends the call INTERNAL with the engine's message, after the chunks
/// already sent: never a silent end that looks like success.
public sealed class GrpcStreamFailureTests
{
    [Fact]
    public async Task AFaultMidStreamEndsTheCallInternalAfterTheChunksSent()
    {
        await using var server = await RunningServer.StartAsync(
            engineFactory: (options, logs) => new FaultingEngine(DefaultEngine.Create(options, logs)));
        using var call = server.Grpc().Generate(GenerateResult.Greedy(16));
        var chunks = new List<GenerateChunk>();
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync()) chunks.Add(response.Chunk);
        });
        Assert.Equal(StatusCode.Internal, error.StatusCode);
        Assert.Contains("injected fault", error.Status.Detail);
        Assert.Equal(2, chunks.Count);
        await server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.KVUsage == 0);
    }
}
