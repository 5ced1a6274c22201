using Serving.Engine;
using Serving.Engine.Speculative;
using Serving.Server.Options;

namespace Serving.Server.Telemetry;

/// vLLM's periodic stats line, for operators reading the log: every --log-stats-interval seconds while the engine
/// works (and once more when it falls idle), the prompt and generation throughput since the last line, running and
/// waiting requests, KV cache usage and the prefix cache hit rate since the last line. Off with --disable-log-stats.
internal sealed class StatsLogger(ILlmEngine engine, ServerOptions options, ILogger<StatsLogger> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.DisableLogStats) return;
        var last = engine.GetStats();
        var lastAt = TimeProvider.System.GetTimestamp();
        var wasBusy = false;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.LogStatsInterval));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var stats = engine.GetStats();
            var seconds = TimeProvider.System.GetElapsedTime(lastAt).TotalSeconds;
            var busy = stats.RunningRequests + stats.WaitingRequests > 0 || stats.Steps != last.Steps;
            if (busy || wasBusy)
            {
                var queries = stats.PrefixCacheQueries - last.PrefixCacheQueries;
                Log.EngineStats(logger, (stats.PromptTokens - last.PromptTokens) / seconds,
                    (stats.GenerationTokens - last.GenerationTokens) / seconds, stats.RunningRequests, stats.WaitingRequests,
                    100 * stats.KVUsage, queries == 0 ? 0 : 100.0 * (stats.PrefixCacheHits - last.PrefixCacheHits) / queries);
                LogSpeculation(stats.Speculation, last.Speculation);
            }
            (last, lastAt, wasBusy) = (stats, TimeProvider.System.GetTimestamp(), busy);
        }
    }

    /// vLLM's spec-decoding line, over the drafts checked since the last line (none: no line). Mean acceptance length
    /// counts the token every check yields besides its kept drafts.
    void LogSpeculation(SpeculationStats now, SpeculationStats last)
    {
        var drafts = now.NumDrafts - last.NumDrafts;
        if (drafts == 0) return;
        var (drafted, accepted) = (now.NumDraftTokens - last.NumDraftTokens, now.NumAcceptedTokens - last.NumAcceptedTokens);
        var perPosition = string.Join(", ", now.AcceptedPerPosition.Select((kept, i) =>
            ((kept - (i < last.AcceptedPerPosition.Count ? last.AcceptedPerPosition[i] : 0)) / (double)drafts).ToString("F3")));
        Log.SpeculationStats(logger, 1 + (double)accepted / drafts, accepted, drafted, perPosition, drafted == 0 ? 0 : 100.0 * accepted / drafted);
    }
}
