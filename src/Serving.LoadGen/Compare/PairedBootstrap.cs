using Serving.LoadGen.Metrics;

namespace Serving.LoadGen.Compare;

/// A statistic of endpoint A, the same of endpoint B, their ratio A/B and a percentile-bootstrap confidence
/// interval of the ratio.
internal sealed record RatioEstimate(double A, double B, double Ratio, double Low, double High);

/// Paired bootstrap over the requests of one trace: both endpoints served the same requests, so each resample
/// draws request indices once and evaluates both statistics on those same requests. Pairing removes the
/// request-to-request variance (a long prompt is slow on both) from the ratio's interval.
internal static class PairedBootstrap
{
    public static RatioEstimate Ratio(int numRequests, Func<IReadOnlyList<int>, double> statA, Func<IReadOnlyList<int>, double> statB,
        int numResamples, int seed, double confidence = 0.95)
    {
        if (numRequests < 1) throw new ArgumentException("a paired bootstrap needs at least one request");
        var all = Enumerable.Range(0, numRequests).ToArray();
        double a = statA(all), b = statB(all);
        var rng = new Random(seed);
        var sample = new int[numRequests];
        var ratios = new List<double>(numResamples);
        for (var r = 0; r < numResamples; r++)
        {
            for (var i = 0; i < numRequests; i++) sample[i] = rng.Next(numRequests);
            var ratio = statA(sample) / statB(sample);
            if (double.IsFinite(ratio)) ratios.Add(ratio);
        }
        var tail = (1 - confidence) / 2 * 100;
        return ratios.Count == 0
            ? new RatioEstimate(a, b, a / b, double.NaN, double.NaN)
            : new RatioEstimate(a, b, a / b, Percentiles.Of(ratios, tail), Percentiles.Of(ratios, 100 - tail));
    }
}
