using Grpc.Core;
using Serving.Grpc.V1;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Grpc;

/// Past --max-num-queued-reqs waiting requests, new calls end RESOURCE_EXHAUSTED before any message.
public sealed class GrpcQueueFullTests
{
    [Fact]
    public async Task AFullQueueAnswersResourceExhausted()
    {
        await using var server = await RunningServer.StartAsync(["--max-num-seqs", "1", "--max-num-queued-reqs", "1"]);
        using var stop = new CancellationTokenSource();
        var calls = Enumerable.Range(0, 4).Select(_ => server.Grpc().Generate(GenerateResult.Greedy(240), cancellationToken: stop.Token)).ToList();
        var firsts = calls.Select(call => FirstAsync(call)).ToList();
        var outcomes = await Task.WhenAll(firsts);
        Assert.Contains(outcomes, o => o == StatusCode.ResourceExhausted);
        Assert.Contains(outcomes, o => o == StatusCode.OK);
        var refused = calls.Where((_, i) => outcomes[i] == StatusCode.ResourceExhausted).First();
        Assert.Equal("queue_full", refused.GetTrailers().GetValue("error-code"));
        Assert.Contains("--max-num-queued-reqs", refused.GetStatus().Detail);

        await stop.CancelAsync();
        foreach (var call in calls) call.Dispose();
        await server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0 && s.KVUsage == 0);
    }

    /// OK once the call's first message arrived (it was admitted), else the status it ended with.
    static async Task<StatusCode> FirstAsync(AsyncServerStreamingCall<GenerateResponse> call)
    {
        try
        {
            await call.ResponseHeadersAsync;
            return await call.ResponseStream.MoveNext(CancellationToken.None) ? StatusCode.OK : call.GetStatus().StatusCode;
        }
        catch (RpcException error)
        {
            return error.StatusCode;
        }
    }
}
