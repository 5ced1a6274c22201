using Serving.LoadGen.Compare;
using Serving.LoadGen.Metrics;
using Serving.LoadGen.Runner;
using Serving.LoadGen.Tests.Support;

namespace Serving.LoadGen.Tests.Compare;

public sealed class PairedBootstrapTests
{
    [Fact]
    public void AnExactlyProportionalPairHasADegenerateInterval()
    {
        // B is A times 2 on every request: every resample has ratio 0.5
        var a = Enumerable.Range(1, 50).Select(i => (double)i * i).ToArray();
        var estimate = PairedBootstrap.Ratio(a.Length, idx => idx.Average(i => a[i]), idx => idx.Average(i => 2 * a[i]), 500, seed: 1);
        Assert.Equal(0.5, estimate.Ratio, 12);
        Assert.Equal(0.5, estimate.Low, 12);
        Assert.Equal(0.5, estimate.High, 12);
    }

    [Fact]
    public void TheIntervalCoversTheTrueRatioOfNoisyPairs()
    {
        // per-request costs vary widely (x), B = 1.5 x plus small noise: the true ratio of means is 1 / 1.5
        var rng = new Random(5);
        var x = Enumerable.Range(0, 400).Select(_ => 10 + 90 * rng.NextDouble()).ToArray();
        var y = x.Select(v => 1.5 * v + (rng.NextDouble() - 0.5)).ToArray();
        var estimate = PairedBootstrap.Ratio(x.Length, idx => idx.Average(i => x[i]), idx => idx.Average(i => y[i]), 1000, seed: 2);
        Assert.InRange(1 / 1.5, estimate.Low, estimate.High);
        Assert.True(estimate.High - estimate.Low < 0.01, $"pairing should make the interval narrow: {estimate}");
        Assert.True(estimate.Low <= estimate.Ratio && estimate.Ratio <= estimate.High);
    }

    [Fact]
    public void PairedRunsGiveARatioPerMetric()
    {
        // A: TTFT 100 ms and 10 ms per token; B: twice as slow on every request, same tokens, same duration
        var runA = new BenchmarkRun(Enumerable.Range(0, 20).Select(i => Timelines.Completed(i, 50, 10 + i, 0.1, 0.01)).ToArray(), 10);
        var runB = new BenchmarkRun(Enumerable.Range(0, 20).Select(i => Timelines.Completed(i, 50, 10 + i, 0.2, 0.02)).ToArray(), 10);
        var comparison = Comparison.Pair(2, runA, runB, [99], GoodputSlo.Parse(["ttft:150"]), 200, seed: 0);
        var ratios = comparison.Estimates.ToDictionary(e => e.Metric, e => e.Estimate);
        Assert.Equal(0.5, ratios["TTFT p50 ms"].Ratio, 9);
        Assert.Equal(0.5, ratios["TPOT p99 ms"].Ratio, 9);
        Assert.Equal(1.0, ratios["output tok/s"].Ratio, 9);
        Assert.Equal(2.0, ratios["goodput req/s"].A, 9);      // all 20 of A meet TTFT <= 150 ms over 10 s
        Assert.Equal(0.0, ratios["goodput req/s"].B, 9);
    }
}
