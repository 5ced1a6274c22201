namespace Serving.LoadGen.Metrics;

/// Summary statistics computed as numpy does (what vLLM's benchmark reports): linear-interpolation
/// percentiles, population standard deviation, and 0 for an empty sample (np.mean(x or 0)).
internal static class Percentiles
{
    /// The p-th percentile (0..100) of the values, interpolating linearly between closest ranks.
    public static double Of(IReadOnlyList<double> values, double p)
    {
        if (p is < 0 or > 100) throw new ArgumentOutOfRangeException(nameof(p), $"percentile {p} is outside 0..100");
        if (values.Count == 0) return 0;
        var sorted = values.Order().ToArray();
        var rank = p / 100 * (sorted.Length - 1);
        var low = (int)Math.Floor(rank);
        var high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
    }

    public static double Mean(IReadOnlyList<double> values) => values.Count == 0 ? 0 : values.Average();

    public static double Std(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return 0;
        var mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / values.Count);
    }
}

/// One latency metric of a run, in milliseconds: mean, median, standard deviation and the chosen percentiles.
internal sealed record LatencySummary(double Mean, double Median, double Std, IReadOnlyDictionary<double, double> Percentiles)
{
    /// Summarises values given in seconds, reporting milliseconds.
    public static LatencySummary FromSeconds(IReadOnlyList<double> seconds, IReadOnlyList<double> percentiles)
    {
        var ms = seconds.Select(s => s * 1000).ToArray();
        return new LatencySummary(Metrics.Percentiles.Mean(ms), Metrics.Percentiles.Of(ms, 50), Metrics.Percentiles.Std(ms),
            percentiles.Distinct().ToDictionary(p => p, p => Metrics.Percentiles.Of(ms, p)));
    }
}
