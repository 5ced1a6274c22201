using System.Diagnostics.Metrics;
using Serving.Engine;

namespace Serving.Server.Telemetry;

/// The engine's gauges and counters (ILlmEngine.GetStats) as observable instruments, read at each scrape.
/// Nothing is reported while the engine is loading (its stats do not exist yet).
internal sealed class EngineMetrics
{
    public const string MeterName = "Serving.Engine";

    readonly ILlmEngine _engine;

    public EngineMetrics(IMeterFactory meterFactory, ILlmEngine engine)
    {
        _engine = engine;
        var meter = meterFactory.Create(MeterName);
        meter.CreateObservableGauge("serving.engine.requests.running", () => Observe(s => s.RunningRequests), "{request}", "Requests being generated.");
        meter.CreateObservableGauge("serving.engine.requests.waiting", () => Observe(s => s.WaitingRequests), "{request}", "Requests waiting to be scheduled.");
        meter.CreateObservableGauge("serving.engine.kv_cache.usage", () => Observe(s => s.KVUsage), "1", "Fraction of KV blocks held by live sequences.");
        meter.CreateObservableGauge("serving.engine.kv_cache.free_blocks", () => Observe(s => s.FreeKVBlocks), "{block}", "Free KV blocks.");
        meter.CreateObservableGauge("serving.engine.kv_cache.blocks", () => Observe(s => s.NumKVBlocks), "{block}", "All KV blocks.");
        meter.CreateObservableGauge("serving.engine.prefix_cache.hit_rate", () => Observe(HitRate), "1", "Prefix-cache hits over queries since start.");
        meter.CreateObservableCounter("serving.engine.prefix_cache.queries", () => Observe(s => s.PrefixCacheQueries), "{block}", "Prefix-cache lookups.");
        meter.CreateObservableCounter("serving.engine.prefix_cache.hits", () => Observe(s => s.PrefixCacheHits), "{block}", "Prefix-cache hits.");
        meter.CreateObservableCounter("serving.engine.preemptions", () => Observe(s => s.Preemptions), "{preemption}", "Sequences preempted for lack of KV blocks.");
        meter.CreateObservableCounter("serving.engine.prompt_tokens", () => Observe(s => s.PromptTokens), "{token}", "Prompt tokens processed.");
        meter.CreateObservableCounter("serving.engine.generation_tokens", () => Observe(s => s.GenerationTokens), "{token}", "Tokens generated.");
        meter.CreateObservableCounter("serving.engine.steps", () => Observe(s => s.Steps), "{step}", "Engine steps run.");
        // speculative decoding (vLLM's spec_decode counters); zero without --speculative-config
        meter.CreateObservableCounter("serving.engine.spec_decode.drafts", () => Observe(s => s.Speculation.NumDrafts), "{draft}", "Checks of a sequence's draft tokens.");
        meter.CreateObservableCounter("serving.engine.spec_decode.draft_tokens", () => Observe(s => s.Speculation.NumDraftTokens), "{token}", "Draft tokens checked.");
        meter.CreateObservableCounter("serving.engine.spec_decode.accepted_tokens", () => Observe(s => s.Speculation.NumAcceptedTokens), "{token}", "Draft tokens kept.");
        meter.CreateObservableCounter("serving.engine.spec_decode.accepted_tokens_per_position", ObservePerPosition, "{token}", "Draft tokens kept, by place among a check's drafts (position 0 is the first draft).");
    }

    /// Prefix-cache hits over queries since start (0 before the first query).
    public static double HitRate(EngineStats stats) =>
        stats.PrefixCacheQueries == 0 ? 0 : (double)stats.PrefixCacheHits / stats.PrefixCacheQueries;

    IEnumerable<Measurement<long>> ObservePerPosition() =>
        _engine.State is EngineState.Ready or EngineState.Draining
            ? _engine.GetStats().Speculation.AcceptedPerPosition.Select((kept, position) =>
                new Measurement<long>(kept, new KeyValuePair<string, object?>("position", position)))
            : [];

    IEnumerable<Measurement<T>> Observe<T>(Func<EngineStats, T> read) where T : struct =>
        _engine.State is EngineState.Ready or EngineState.Draining ? [new Measurement<T>(read(_engine.GetStats()))] : [];
}
