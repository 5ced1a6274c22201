using Serving.LoadGen.Runner;

namespace Serving.LoadGen.Metrics;

/// vLLM's calculate_metrics over a run's outcomes. A failed request adds no latency sample and no tokens but
/// counts in NumRequests and Failed; TPOT excludes the first token, and a request with one output token
/// has no TPOT sample (it counts as TPOT 0 for goodput, as in vLLM).
internal static class MetricsCalculator
{
    public static BenchmarkMetrics Compute(BenchmarkRun run, IReadOnlyList<double> percentiles, GoodputSlo? slo)
    {
        var completed = run.Outcomes.Where(o => o.Success).ToArray();
        long input = completed.Sum(o => (long)o.PromptLength), output = completed.Sum(o => (long)o.OutputTokens);
        var tpots = completed.Where(o => o.OutputTokens > 1).Select(Tpot).ToArray();
        var good = slo is null ? (int?)null : completed.Count(o => slo.IsMet(o.Ttft, Tpot(o), o.Latency));
        var duration = run.DurationSeconds;
        return new BenchmarkMetrics
        {
            NumRequests = run.Outcomes.Count,
            Completed = completed.Length,
            Failed = run.Outcomes.Count - completed.Length,
            DurationSeconds = duration,
            TotalInputTokens = input,
            TotalOutputTokens = output,
            RequestThroughput = completed.Length / duration,
            GoodCompleted = good,
            RequestGoodput = good / duration,
            OutputThroughput = output / duration,
            TotalTokenThroughput = (input + output) / duration,
            Ttft = LatencySummary.FromSeconds(completed.Select(o => o.Ttft).ToArray(), percentiles),
            Tpot = LatencySummary.FromSeconds(tpots, percentiles),
            Itl = LatencySummary.FromSeconds(completed.SelectMany(o => o.Itl).ToArray(), percentiles),
            E2el = LatencySummary.FromSeconds(completed.Select(o => o.Latency).ToArray(), percentiles),
            Errors = SummariseErrors(run.Outcomes),
        };
    }

    /// Time per output token after the first, in seconds; 0 when there is no second token.
    public static double Tpot(RequestOutcome outcome) =>
        outcome.OutputTokens > 1 ? (outcome.Latency - outcome.Ttft) / (outcome.OutputTokens - 1) : 0;

    static IReadOnlyList<ErrorCount> SummariseErrors(IEnumerable<RequestOutcome> outcomes) =>
        outcomes.Where(o => !o.Success).GroupBy(o => o.Error ?? "unknown error")
            .Select(g => new ErrorCount(g.Key, g.Count())).OrderByDescending(e => e.Count).ThenBy(e => e.Message, StringComparer.Ordinal).ToArray();
}
