using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Telemetry;

/// vLLM's periodic stats line: written while the engine works and once when it falls idle, then quiet; none under
/// --disable-log-stats. (The start-up warm-up may give one line before the first request: not asserted either way.)
public sealed class StatsLogTests
{
    const int EngineStatsEvent = 27;

    [Fact]
    public async Task WhileTheEngineWorksAStatsLineComesEachIntervalThenStopsWhenIdle()
    {
        await using var server = await RunningServer.StartAsync(["--log-stats-interval", "0.2"]);
        var log = LogCapture.AttachTo(server);
        var (status, _) = await server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello", max_tokens = 200, ignore_eos = true,
        });
        Assert.Equal(200, status);
        var lines = await WaitForIdleLineAsync(log);
        Assert.Contains(lines, line => line.Contains("Avg prompt throughput: ", StringComparison.Ordinal)
            && !line.Contains("Avg generation throughput: 0.0 tokens/s", StringComparison.Ordinal));
        Assert.All(lines, line => Assert.Matches(@"Running: \d+ reqs, Waiting: \d+ reqs, KV cache usage: \d+\.\d%, Prefix cache hit rate: \d+\.\d%$", line));

        var count = log.Of(EngineStatsEvent).Count;
        await Task.Delay(800);
        Assert.Equal(count, log.Of(EngineStatsEvent).Count);   // idle again: quiet
    }

    [Fact]
    public async Task DisableLogStatsLeavesTheLineOut()
    {
        await using var server = await RunningServer.StartAsync(["--log-stats-interval", "0.1", "--disable-log-stats"]);
        var log = LogCapture.AttachTo(server);
        await server.PostAsync("/v1/completions", new { model = RunningServer.Model, prompt = "Hello", max_tokens = 50, ignore_eos = true });
        await Task.Delay(500);
        Assert.Empty(log.Of(EngineStatsEvent));
    }

    /// The lines until the one that reports the engine idle (no requests, no generation since the line before).
    static async Task<List<string>> WaitForIdleLineAsync(LogCapture log)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            var lines = log.Of(EngineStatsEvent);
            if (lines.Any(l => l.Contains("Avg generation throughput: 0.0 tokens/s, Running: 0 reqs, Waiting: 0 reqs", StringComparison.Ordinal)))
                return lines;
            await Task.Delay(50);
        }
        throw new TimeoutException("no idle stats line: " + string.Join(" | ", log.Of(EngineStatsEvent)));
    }
}
