using Serving.LoadGen.Metrics;
using Serving.LoadGen.Runner;
using Serving.LoadGen.Tests.Support;

namespace Serving.LoadGen.Tests.Metrics;

public sealed class MetricsCalculatorTests
{
    // Three completed requests over a 10 s run, plus two failures of one kind and one of another:
    //   r0: prompt 100, 11 tokens, TTFT 0.1 s, a chunk every 0.02 s -> E2E 0.3 s, TPOT (0.3 - 0.1) / 10 = 0.02 s
    //   r1: prompt 200,  5 tokens, TTFT 0.5 s, a chunk every 0.1 s  -> E2E 0.9 s, TPOT 0.1 s
    //   r2: prompt 300,  1 token,  TTFT 0.2 s                        -> E2E 0.2 s, no TPOT sample (TPOT 0 for goodput)
    static readonly BenchmarkRun Run = new(
    [
        Timelines.Completed(0, 100, 11, 0.1, 0.02),
        Timelines.Failed(1, "HTTP 429: queue full"),
        Timelines.Completed(2, 200, 5, 0.5, 0.1),
        Timelines.Failed(3, "HTTP 429: queue full"),
        Timelines.Completed(4, 300, 1, 0.2, 0),
        Timelines.Failed(5, "stream error: engine failed"),
    ], DurationSeconds: 10);

    [Fact]
    public void CountsAndThroughputsFollowVllmDefinitions()
    {
        var m = MetricsCalculator.Compute(Run, [90, 99], slo: null);
        Assert.Equal((6, 3, 3), (m.NumRequests, m.Completed, m.Failed));
        Assert.Equal(600, m.TotalInputTokens);       // failed requests add no tokens
        Assert.Equal(17, m.TotalOutputTokens);
        Assert.Equal(0.3, m.RequestThroughput, 12);
        Assert.Equal(1.7, m.OutputThroughput, 12);
        Assert.Equal(61.7, m.TotalTokenThroughput, 12);
        Assert.Null(m.RequestGoodput);
    }

    [Fact]
    public void LatencySummariesAreInMillisecondsWithNumpyPercentiles()
    {
        var m = MetricsCalculator.Compute(Run, [90, 99], slo: null);
        // TTFT samples 100, 500, 200 ms: sorted 100, 200, 500; p90 at rank 1.8 = 200 + 0.8 * 300 = 440
        Assert.Equal(800.0 / 3, m.Ttft.Mean, 9);
        Assert.Equal(200, m.Ttft.Median, 9);
        Assert.Equal(440, m.Ttft.Percentiles[90], 9);
        Assert.Equal(494, m.Ttft.Percentiles[99], 9);
        // TPOT excludes the first token and the one-token request: samples 20 and 100 ms
        Assert.Equal(60, m.Tpot.Mean, 9);
        Assert.Equal(60, m.Tpot.Median, 9);
        Assert.Equal(40, m.Tpot.Std, 9);
        Assert.Equal(92, m.Tpot.Percentiles[90], 9);
        // ITL: ten gaps of 20 ms and four of 100 ms
        Assert.Equal((10 * 20 + 4 * 100) / 14.0, m.Itl.Mean, 9);
        Assert.Equal(20, m.Itl.Median, 9);
        Assert.Equal(100, m.Itl.Percentiles[99], 9);
        // E2E 300, 900, 200 ms
        Assert.Equal(1400.0 / 3, m.E2el.Mean, 9);
        Assert.Equal(300, m.E2el.Median, 9);
        Assert.Equal(300 + 0.8 * 600, m.E2el.Percentiles[90], 9);
    }

    [Fact]
    public void TpotExcludesTheFirstToken()
    {
        var outcome = Timelines.Completed(0, 10, 5, ttft: 1.0, gap: 0.25);
        Assert.Equal(2.0, outcome.Latency, 12);
        Assert.Equal(0.25, MetricsCalculator.Tpot(outcome), 12);   // (2.0 - 1.0) / (5 - 1)
        Assert.Equal(0, MetricsCalculator.Tpot(Timelines.Completed(1, 10, 1, 1.0, 0)));
    }

    [Fact]
    public void GoodputCountsRequestsMeetingEverySlo()
    {
        // ttft <= 300 ms keeps r0 and r2; tpot <= 50 ms keeps r0 and r2 (TPOT 0); e2el <= 250 ms keeps only r2
        Assert.Equal(2, MetricsCalculator.Compute(Run, [99], GoodputSlo.Parse(["ttft:300", "tpot:50"])).GoodCompleted);
        var strict = MetricsCalculator.Compute(Run, [99], GoodputSlo.Parse(["ttft:300 tpot:50 e2el:250"]));
        Assert.Equal(1, strict.GoodCompleted);
        Assert.Equal(0.1, strict.RequestGoodput!.Value, 12);
    }

    [Fact]
    public void FailuresAreSummarisedByMessageMostFrequentFirst()
    {
        var m = MetricsCalculator.Compute(Run, [99], null);
        Assert.Equal([new ErrorCount("HTTP 429: queue full", 2), new ErrorCount("stream error: engine failed", 1)], m.Errors);
    }

    [Fact]
    public void AnAllFailedRunReportsZerosNotErrors()
    {
        var m = MetricsCalculator.Compute(new BenchmarkRun([Timelines.Failed(0, "refused")], 1), [99], null);
        Assert.Equal((0, 1), (m.Completed, m.Failed));
        Assert.Equal(0, m.Ttft.Mean);
        Assert.Equal(0, m.Tpot.Percentiles[99]);
    }
}
