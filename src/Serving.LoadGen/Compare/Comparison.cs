using Serving.LoadGen.Clients;
using Serving.LoadGen.Metrics;
using Serving.LoadGen.Runner;

namespace Serving.LoadGen.Compare;

/// One request rate of a comparison: both runs of the same trace and the paired estimate of each metric.
internal sealed record RateComparison(double Rate, BenchmarkRun RunA, BenchmarkRun RunB,
    BenchmarkMetrics MetricsA, BenchmarkMetrics MetricsB, IReadOnlyList<(string Metric, RatioEstimate Estimate)> Estimates);

/// A whole comparison: the two endpoints (label and what the server reports) and one entry per rate.
internal sealed record Comparison(string LabelA, string LabelB, ServerInfo ServerA, ServerInfo ServerB,
    IReadOnlyList<RateComparison> Rates)
{
    /// Compares two runs of the same trace: every metric as a paired ratio A/B with its bootstrap interval.
    public static RateComparison Pair(double rate, BenchmarkRun runA, BenchmarkRun runB, IReadOnlyList<double> percentiles,
        GoodputSlo? slo, int numResamples, int seed)
    {
        if (runA.Outcomes.Count != runB.Outcomes.Count) throw new ArgumentException("paired runs must have served the same trace");
        var estimates = PairedMetric.All(slo).Select(metric => (metric.Name, PairedBootstrap.Ratio(runA.Outcomes.Count,
            indices => metric.Evaluate(runA, indices), indices => metric.Evaluate(runB, indices), numResamples, seed))).ToArray();
        return new RateComparison(rate, runA, runB, MetricsCalculator.Compute(runA, percentiles, slo),
            MetricsCalculator.Compute(runB, percentiles, slo), estimates);
    }
}
