using Serving.Engine;
using Serving.Server.Generation;
using Serving.Server.OpenAI;

namespace Serving.Server.Telemetry;

/// GET /v1/engine/stats: the engine's gauges and counters (what /metrics exports as serving_engine_*) as one JSON
/// object, for the playground's live panel and for scripts that would rather not parse Prometheus text. Counters
/// are totals since start; a reader gets rates from the deltas of two reads over their timestamps.
internal static class EngineStatsEndpoint
{
    public static IResult Get(ServingContext serving)
    {
        serving.EnsureReady();
        return TypedResults.Json(From(serving.ModelName, serving.Engine.GetStats()), OpenAIJsonContext.Default.EngineStatsResponse);
    }

    static EngineStatsResponse From(string model, EngineStats stats) => new(
        model, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0,
        stats.RunningRequests, stats.WaitingRequests,
        stats.KVUsage, stats.NumKVBlocks, stats.FreeKVBlocks,
        stats.PrefixCacheQueries, stats.PrefixCacheHits, EngineMetrics.HitRate(stats),
        stats.Preemptions, stats.PromptTokens, stats.GenerationTokens, stats.Steps, stats.LastStepDuration.TotalMilliseconds,
        stats.Speculation.NumDrafts, stats.Speculation.NumDraftTokens, stats.Speculation.NumAcceptedTokens);
}

/// timestamp: Unix seconds (millisecond resolution) when the stats were read. spec_decode_*: speculative decoding's
/// checks of drafts, draft tokens checked and kept (zero without --speculative-config).
internal sealed record EngineStatsResponse(string Model, double Timestamp,
    int RequestsRunning, int RequestsWaiting,
    double KvCacheUsage, int KvCacheBlocks, int KvCacheFreeBlocks,
    long PrefixCacheQueries, long PrefixCacheHits, double PrefixCacheHitRate,
    long Preemptions, long PromptTokens, long GenerationTokens, long Steps, double LastStepMs,
    long SpecDecodeDrafts, long SpecDecodeDraftTokens, long SpecDecodeAcceptedTokens)
{
    public string Object => "engine.stats";
}
