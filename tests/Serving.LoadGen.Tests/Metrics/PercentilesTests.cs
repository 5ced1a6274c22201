using Serving.LoadGen.Metrics;

namespace Serving.LoadGen.Tests.Metrics;

public sealed class PercentilesTests
{
    [Theory]
    // values checked with numpy.percentile([1, 2, 3, 4, 10], p)
    [InlineData(0, 1.0)]
    [InlineData(25, 2.0)]
    [InlineData(50, 3.0)]
    [InlineData(90, 7.6)]
    [InlineData(99, 9.76)]
    [InlineData(100, 10.0)]
    public void InterpolateLinearlyBetweenClosestRanks(double p, double expected) =>
        Assert.Equal(expected, Percentiles.Of([10, 3, 1, 4, 2], p), 12);

    [Fact]
    public void StdIsThePopulationOne() => Assert.Equal(2.0, Percentiles.Std([2, 4, 4, 4, 5, 5, 7, 9]), 12);

    [Fact]
    public void EmptySamplesGiveZero()
    {
        Assert.Equal(0, Percentiles.Of([], 99));
        Assert.Equal(0, Percentiles.Mean([]));
    }

    [Fact]
    public void GoodputSloRejectsUnknownKeysAndBadNumbers()
    {
        Assert.Equal(new GoodputSlo(500, 50, null), GoodputSlo.Parse(["ttft:500", "tpot:50"]));
        Assert.Null(GoodputSlo.Parse([]));
        Assert.Throws<ArgumentException>(() => GoodputSlo.Parse(["itl:5"]));
        Assert.Throws<ArgumentException>(() => GoodputSlo.Parse(["ttft:-1"]));
        Assert.Throws<ArgumentException>(() => GoodputSlo.Parse(["ttft"]));
    }
}
