using Serving.Engine.Tests.Support;
using static Serving.Engine.Tests.Execution.EngineTestHelpers;

namespace Serving.Engine.Tests.Execution;

/// A cancelled request frees its KV blocks within one step, whatever state it was in.
public class CancellationTests
{
    [Fact]
    public async Task CancelledWhileWaitingFreesItsPlace()
    {
        // one sequence at a time, and a first request of 4000 tokens (seconds of work): the second can only wait
        await using var engine = new LlmEngine(new EngineOptions
        {
            Model = "tiny-gqa", Tokenizer = Fixtures.Dir("llama-gqa"), Dtype = "float32", MaxNumSeqs = 1,
            KVCacheMemoryBytes = 16 << 20,
        });
        await engine.WaitUntilReadyAsync(CancellationToken.None);
        using var cancelRunning = new CancellationTokenSource();
        var running = await StartedAsync(engine, Greedy([5, 6, 7], 4000), cancelRunning.Token);
        using var cancelWaiting = new CancellationTokenSource();
        var waitingTokens = 0;
        var waiting = Task.Run(async () =>
        {
            await foreach (var tokenEvent in engine.GenerateAsync(Greedy([8, 9], 150), cancelWaiting.Token))
                waitingTokens += tokenEvent.TokenIds.Count;
        });
        await WaitUntilAsync(engine, s => s.WaitingRequests == 1);
        cancelWaiting.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        Assert.Equal(0, waitingTokens);
        await WaitUntilAsync(engine, s => s.WaitingRequests == 0 && s.RunningRequests == 1);
        cancelRunning.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
        await WaitForIdleAsync(engine);
    }

    [Fact]
    public async Task CancelledDuringPrefillFreesItsBlocks()
    {
        // a 240-token prompt in chunks of 2 tokens takes 120 steps to prefill
        await using var engine = await StartAsync(configure: o => o with { MaxNumBatchedTokens = 2, BlockSize = 4 });
        var prompt = Enumerable.Range(0, 240).Select(i => 3 + i % 400).ToArray();
        using var cancel = new CancellationTokenSource();
        var request = CollectAsync(engine, Greedy(prompt, 8), cancel.Token);
        await WaitUntilAsync(engine, s => s.RunningRequests == 1 && s.KVUsage > 0);
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
    public async Task DrainLetsRunningRequestsFinishWithinTheTimeout()
    {
        var engine = await StartAsync();
        var first = await StartedAsync(engine, Greedy([5, 6, 7], 40));
        var second = await StartedAsync(engine, Greedy([8, 9], 20));
        await engine.DrainAsync(TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.Equal(FinishReason.Length, (await first).Finish());
        Assert.Equal(FinishReason.Length, (await second).Finish());
        Assert.Equal(EngineState.Stopped, engine.State);
        await Assert.ThrowsAsync<EngineUnavailableException>(() => CollectAsync(engine, Greedy([1], 1)));
        await engine.DisposeAsync();
    }

    [Fact]
    public async Task DrainAbortsWhatIsStillRunningAtTheTimeout()
    {
        var engine = await StartAsync();
        var running = await StartedAsync(engine, Greedy([8, 9], 240));
        await engine.DrainAsync(TimeSpan.Zero, CancellationToken.None);
        Assert.Equal(FinishReason.Abort, (await running).Finish());
        Assert.Equal(EngineState.Stopped, engine.State);
        await engine.DisposeAsync();
    }

    [Fact]
    public async Task ARefusedDuplicateRequestIdLeavesTheLiveRequestAlone()
    {
        await using var engine = await StartAsync();
        var live = await StartedAsync(engine, Greedy([5, 6, 7], 60, id: "same"));
        await Assert.ThrowsAsync<InvalidRequestException>(() => CollectAsync(engine, Greedy([8, 9], 4, id: "same")));
        Assert.Equal(FinishReason.Length, (await live).Finish());
        Assert.Equal(60, (await live).Tokens().Length);
    }

    /// Starts collecting a request and returns once its first token arrived (so it is running).
    static async Task<Task<Completion>> StartedAsync(ILlmEngine engine, GenerationRequest request,
        CancellationToken cancellationToken = default)
    {
        var firstToken = new TaskCompletionSource();
        var completion = Task.Run(async () =>
        {
            var events = new List<TokenEvent>();
            await foreach (var tokenEvent in engine.GenerateAsync(request, cancellationToken))
            {
                events.Add(tokenEvent);
                firstToken.TrySetResult();
            }
            return new Completion(events);
        });
        await Task.WhenAny(firstToken.Task, completion);
        return completion;
    }
}
