using Grpc.Core;
using Serving.Grpc.V1;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Grpc;

/// A call that is cancelled or outlives its deadline aborts its engine request, running or queued, and the
/// KV blocks come back.
public sealed class GrpcCancellationTests : IAsyncLifetime
{
    RunningServer _server = null!;

    // One sequence at a time, so a second request waits in the queue behind the first; a context long enough for a call
    // to outlast its deadline by seconds on a busy machine (the tiny model decodes a token in about a millisecond).
    public async Task InitializeAsync() => _server = await RunningServer.StartAsync(
        ["--max-num-seqs", "1", "--hf-overrides", """{"max_position_embeddings": 4096}"""]);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    /// Seconds of decoding on CPU ("Hello world" is 8 tokens of the 4096 here): a call still runs when its client's
    /// next move reaches the server.
    const int LongTokens = 3000;

    static GenerateRequest Long(int n = 1)
    {
        var request = GenerateResult.Greedy(LongTokens);
        request.Sampling.N = n;
        return request;
    }

    async Task ExpectDrainedAsync(int maxTokens)
    {
        var stats = await _server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0);
        await _server.WaitForStatsAsync(s => s.KVUsage == 0 && s.FreeKVBlocks == s.NumKVBlocks);
        Assert.True(stats.GenerationTokens < maxTokens, $"generated {stats.GenerationTokens} tokens: the request was not aborted");
    }

    [Fact]
    public async Task CancellingAStreamMidWayEndsItCancelledAndFreesItsBlocks()
    {
        using var cancel = new CancellationTokenSource();
        using var call = _server.Grpc().Generate(Long(), cancellationToken: cancel.Token);
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.True(_server.Engine.GetStats().KVUsage > 0);
        await cancel.CancelAsync();

        var error = await Assert.ThrowsAsync<RpcException>(() => DrainAsync(call));
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        await ExpectDrainedAsync(LongTokens);
    }

    [Fact]
    public async Task ADeadlineThatPassesEndsTheCallDeadlineExceededAndFreesItsBlocks()
    {
        // 8 sequences one at a time (--max-num-seqs 1): 24,000 steps, far beyond the deadline.
        using var call = _server.Grpc().Generate(Long(n: 8), deadline: DateTime.UtcNow.AddMilliseconds(300));
        var error = await Assert.ThrowsAsync<RpcException>(() => DrainAsync(call));
        // Client and server each time the deadline. The client's timer ends the call DeadlineExceeded; where it runs
        // late (a busy 2-core machine) the server's own deadline may end the HTTP/2 stream first, a reset the client
        // reads as Unavailable: gRPC's deadline status over HTTP/2 is best effort (grpc/grpc#2685).
        Assert.True(error.StatusCode is StatusCode.DeadlineExceeded or StatusCode.Unavailable, $"{error.StatusCode}: {error.Status.Detail}");
        await ExpectDrainedAsync(8 * LongTokens);
    }

    [Fact]
    public async Task AQueuedCallThatIsCancelledLeavesTheQueue()
    {
        using var stopRunning = new CancellationTokenSource();
        using var running = _server.Grpc().Generate(Long(), cancellationToken: stopRunning.Token);
        Assert.True(await running.ResponseStream.MoveNext(CancellationToken.None));

        using var leave = new CancellationTokenSource();
        using var queued = _server.Grpc().Generate(Long(), cancellationToken: leave.Token);
        var queuedRead = DrainAsync(queued);
        await _server.WaitForStatsAsync(s => s.WaitingRequests == 1);
        await leave.CancelAsync();
        Assert.Equal(StatusCode.Cancelled, (await Assert.ThrowsAsync<RpcException>(() => queuedRead)).StatusCode);
        await _server.WaitForStatsAsync(s => s.WaitingRequests == 0);

        await stopRunning.CancelAsync();
        await ExpectDrainedAsync(2 * LongTokens);
    }

    static async Task DrainAsync(AsyncServerStreamingCall<GenerateResponse> call)
    {
        while (await call.ResponseStream.MoveNext(CancellationToken.None)) { }
    }
}
