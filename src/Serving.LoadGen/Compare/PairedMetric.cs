using Serving.LoadGen.Metrics;
using Serving.LoadGen.Runner;

namespace Serving.LoadGen.Compare;

/// A statistic `compare` reports, evaluated on the requests (trace indices) of a bootstrap sample of one run.
/// Throughputs divide by the whole run's duration; latency percentiles use the sample's completed requests.
internal sealed record PairedMetric(string Name, Func<BenchmarkRun, IReadOnlyList<int>, double> Evaluate)
{
    public static IReadOnlyList<PairedMetric> All(GoodputSlo? slo)
    {
        List<PairedMetric> metrics =
        [
            new("output tok/s", (run, idx) => Completed(run, idx).Sum(o => (double)o.OutputTokens) / run.DurationSeconds),
            new("requests/s", (run, idx) => Completed(run, idx).Count() / run.DurationSeconds),
            new("TTFT p50 ms", (run, idx) => Percentile(Completed(run, idx).Select(o => o.Ttft), 50)),
            new("TTFT p99 ms", (run, idx) => Percentile(Completed(run, idx).Select(o => o.Ttft), 99)),
            new("TPOT p50 ms", (run, idx) => Percentile(Completed(run, idx).Where(o => o.OutputTokens > 1).Select(MetricsCalculator.Tpot), 50)),
            new("TPOT p99 ms", (run, idx) => Percentile(Completed(run, idx).Where(o => o.OutputTokens > 1).Select(MetricsCalculator.Tpot), 99)),
        ];
        if (slo is not null)
            metrics.Add(new("goodput req/s", (run, idx) =>
                Completed(run, idx).Count(o => slo.IsMet(o.Ttft, MetricsCalculator.Tpot(o), o.Latency)) / run.DurationSeconds));
        return metrics;
    }

    static IEnumerable<RequestOutcome> Completed(BenchmarkRun run, IReadOnlyList<int> indices) =>
        indices.Select(i => run.Outcomes[i]).Where(o => o.Success);

    static double Percentile(IEnumerable<double> seconds, double p) => Percentiles.Of(seconds.Select(s => s * 1000).ToArray(), p);
}
