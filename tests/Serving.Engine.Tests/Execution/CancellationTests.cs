using static Serving.Engine.Tests.Execution.EngineTestHelpers;

namespace Serving.Engine.Tests.Execution;

/// A cancelled request frees its KV blocks within one step, whatever state it was in.
public class CancellationTests
{
    [Fact]
    public async Task CancelledWhileWaitingFreesItsPlace()
    {
        // one sequence at a time: the second request waits behind the first
        await using var engine = await StartAsync(configure: o => o with { MaxNumSeqs = 1 });
        var running = CollectAsync(engine, Greedy([5, 6, 7], 150));
        using var cancel = new CancellationTokenSource();
        var waiting = CollectAsync(engine, Greedy([8, 9], 150), cancel.Token);
        await WaitUntil(engine, s => s.WaitingRequests == 1);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        await running;
        await WaitForIdleAsync(engine);
    }

    [Fact]
    public async Task CancelledDuringPrefillFreesItsBlocks()
    {
        // a 200-token prompt in chunks of 8 tokens takes 25 steps to prefill
        await using var engine = await StartAsync(configure: o => o with { MaxNumBatchedTokens = 8, BlockSize = 4 });
        var prompt = Enumerable.Range(0, 200).Select(i => 3 + i % 400).ToArray();
        using var cancel = new CancellationTokenSource();
        var request = CollectAsync(engine, Greedy(prompt, 8), cancel.Token);
        await WaitUntil(engine, s => s.RunningRequests == 1 && s.KVUsage > 0);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        await WaitForIdleAsync(engine);
    }

    [Fact]
    public async Task CancelledDuringDecodeFreesItsBlocks()
    {
        await using var engine = await StartAsync();
        using var cancel = new CancellationTokenSource();
        var tokens = 0;
        var stream = engine.GenerateAsync(Greedy([5, 6, 7], 200), cancel.Token);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var tokenEvent in stream)
            {
                tokens += tokenEvent.TokenIds.Count;
                if (tokens == 3)
                    cancel.Cancel();
            }
        });
        await WaitForIdleAsync(engine);
    }

    [Fact]
    public async Task AReaderThatStopsEarlyAbortsTheRequest()
    {
        await using var engine = await StartAsync();
        await foreach (var _ in engine.GenerateAsync(Greedy([5, 6, 7], 200), CancellationToken.None))
            break;
        await WaitForIdleAsync(engine);
    }

    [Fact]
    public async Task DrainFinishesRunningRequestsThenAbortsTheRest()
    {
        var engine = await StartAsync();
        var shortRequest = CollectAsync(engine, Greedy([5, 6, 7], 4));
        var longRequest = CollectAsync(engine, Greedy([8, 9], 240));
        await WaitUntil(engine, s => s.RunningRequests == 2);
        await engine.DrainAsync(TimeSpan.FromMilliseconds(50), CancellationToken.None);
        Assert.Equal(FinishReason.Length, (await shortRequest).Finish());
        Assert.Equal(FinishReason.Abort, (await longRequest).Finish());
        Assert.Equal(EngineState.Stopped, engine.State);
        await Assert.ThrowsAsync<EngineUnavailableException>(() => CollectAsync(engine, Greedy([1], 1)));
        await engine.DisposeAsync();
    }

    static async Task WaitUntil(ILlmEngine engine, Func<EngineStats, bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!condition(engine.GetStats()))
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting; stats: {engine.GetStats()}");
            await Task.Delay(1);
        }
    }
}
