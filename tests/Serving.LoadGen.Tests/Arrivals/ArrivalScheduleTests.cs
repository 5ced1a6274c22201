using Serving.LoadGen.Arrivals;

namespace Serving.LoadGen.Tests.Arrivals;

public sealed class ArrivalScheduleTests
{
    static double[] Gaps(double[] offsets) => offsets.Zip(offsets.Skip(1), (a, b) => b - a).ToArray();

    static (double Mean, double CoefficientOfVariation) Shape(double[] gaps)
    {
        var mean = gaps.Average();
        var std = Math.Sqrt(gaps.Sum(g => (g - mean) * (g - mean)) / gaps.Length);
        return (mean, std / mean);
    }

    [Fact]
    public void PoissonArrivalsHaveExponentialGapsOfMeanOneOverRate()
    {
        var offsets = ArrivalSchedule.Offsets(20_001, requestRate: 4, burstiness: 1, seed: 7);
        Assert.Equal(0, offsets[0]);
        Assert.True(offsets.Zip(offsets.Skip(1)).All(p => p.Second >= p.First));
        var (mean, cv) = Shape(Gaps(offsets));
        Assert.InRange(mean, 0.25 * 0.97, 0.25 * 1.03);
        Assert.InRange(cv, 0.97, 1.03);           // exponential: standard deviation = mean
    }

    [Theory]
    [InlineData(0.25)]   // bursty
    [InlineData(4.0)]    // more even than Poisson
    public void BurstinessIsTheGammaShapeAndKeepsTheRate(double burstiness)
    {
        var (mean, cv) = Shape(Gaps(ArrivalSchedule.Offsets(20_001, requestRate: 10, burstiness, seed: 3)));
        Assert.InRange(mean, 0.1 * 0.95, 0.1 * 1.05);
        var expectedCv = 1 / Math.Sqrt(burstiness);   // gamma(k, theta): cv = 1 / sqrt(k)
        Assert.InRange(cv, expectedCv * 0.95, expectedCv * 1.05);
    }

    [Fact]
    public void TheSameSeedGivesTheSameTraceAndAnotherSeedAnother()
    {
        Assert.Equal(ArrivalSchedule.Offsets(100, 5, 1, seed: 1), ArrivalSchedule.Offsets(100, 5, 1, seed: 1));
        Assert.NotEqual(ArrivalSchedule.Offsets(100, 5, 1, seed: 1), ArrivalSchedule.Offsets(100, 5, 1, seed: 2));
    }

    [Fact]
    public void AnInfiniteRateSendsEverythingAtOnce() =>
        Assert.All(ArrivalSchedule.Offsets(10, double.PositiveInfinity, 1, 0), offset => Assert.Equal(0, offset));

    [Fact]
    public void NonPositiveRatesAndShapesAreRefused()
    {
        Assert.Throws<ArgumentException>(() => ArrivalSchedule.Offsets(10, 0, 1, 0));
        Assert.Throws<ArgumentException>(() => ArrivalSchedule.Offsets(10, 1, 0, 0));
    }
}
