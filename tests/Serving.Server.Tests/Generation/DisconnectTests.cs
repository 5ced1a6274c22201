using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Generation;

/// A client that goes away aborts its request, running or queued, and its KV blocks come back.
public sealed class DisconnectTests : IAsyncLifetime
{
    RunningServer _server = null!;

    // One sequence at a time, so a second request waits in the queue behind the first; a context long enough that a
    // running request outlasts an HTTP round trip on a busy machine (the tiny model decodes a token in about a millisecond).
    public async Task InitializeAsync() => _server = await RunningServer.StartAsync(
        ["--max-num-seqs", "1", "--hf-overrides", """{"max_position_embeddings": 4096}"""]);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    /// Seconds of decoding: a stream still runs when the client's next move reaches the server.
    const int LongTokens = 3000;

    static object LongStream => new
    {
        model = RunningServer.Model, prompt = "Hello world", max_tokens = LongTokens, ignore_eos = true, temperature = 0, stream = true,
    };

    [Fact]
    public async Task ClosingAStreamMidWayAbortsItAndFreesItsBlocks()
    {
        var (response, events) = await _server.StreamAsync("/v1/completions", LongStream);
        Assert.NotNull(await events.NextAsync());
        Assert.NotNull(await events.NextAsync());
        Assert.True(_server.Engine.GetStats().KVUsage > 0);
        response.Dispose();   // the client goes away mid-stream

        var stats = await _server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0);
        await _server.WaitForStatsAsync(s => s.KVUsage == 0 && s.FreeKVBlocks == s.NumKVBlocks);
        Assert.True(stats.GenerationTokens < LongTokens, $"generated {stats.GenerationTokens} tokens: the stream was not aborted");
    }

    [Fact]
    public async Task ClosingAResponsesStreamMidWayAbortsItAndFreesItsBlocks()
    {
        var (response, events) = await _server.StreamAsync("/v1/responses", new
        {
            model = RunningServer.Model, input = "Hello world", max_output_tokens = LongTokens, ignore_eos = true, temperature = 0, stream = true,
        });
        while (await events.NextAsync() is { } e && e["type"]!.GetValue<string>() != "response.output_text.delta") { }
        Assert.True(_server.Engine.GetStats().KVUsage > 0);
        response.Dispose();

        var stats = await _server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0);
        await _server.WaitForStatsAsync(s => s.KVUsage == 0 && s.FreeKVBlocks == s.NumKVBlocks);
        Assert.True(stats.GenerationTokens < LongTokens, $"generated {stats.GenerationTokens} tokens: the stream was not aborted");
    }

    [Fact]
    public async Task AClientThatLeavesWhileQueuedIsDroppedFromTheQueue()
    {
        var (running, events) = await _server.StreamAsync("/v1/completions", LongStream);
        Assert.NotNull(await events.NextAsync());

        using var leave = new CancellationTokenSource();
        var queued = _server.Http.PostAsync("/v1/completions", RunningServer.Json(new
        {
            model = RunningServer.Model, prompt = "The server", max_tokens = 200, ignore_eos = true,
        }), leave.Token);
        await _server.WaitForStatsAsync(s => s.WaitingRequests == 1);
        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queued);
        await _server.WaitForStatsAsync(s => s.WaitingRequests == 0);

        running.Dispose();
        await _server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.KVUsage == 0 && s.FreeKVBlocks == s.NumKVBlocks);
        var metrics = await _server.Http.GetStringAsync("/metrics");
        Assert.Matches("serving_sequences_finished_total\\{[^}]*finish_reason=\"abort\"[^}]*\\} 2", metrics);
    }
}
