using ScottPlot;
using Serving.Plotting;
using Serving.LoadGen.Metrics;
using Serving.LoadGen.Runner;

namespace Serving.LoadGen.Reports;

/// PNG charts (ScottPlot): latency CDFs of one run, and curves of a metric against the request rate.
internal static class Charts
{
    static Charts() => ChartFont.Use();

    /// One panel per metric (TTFT, TPOT, E2E), one CDF line per labelled run; returns the files written.
    public static IReadOnlyList<string> LatencyCdfs(string directory, string prefix, IReadOnlyList<(string Label, BenchmarkRun Run)> runs)
    {
        var metrics = new (string Name, Func<RequestOutcome, double?> Seconds)[]
        {
            ("ttft", o => o.Ttft),
            ("tpot", o => o.OutputTokens > 1 ? MetricsCalculator.Tpot(o) : null),
            ("e2el", o => o.Latency),
        };
        var files = new List<string>();
        foreach (var (name, seconds) in metrics)
        {
            var plot = new Plot();
            foreach (var (label, run) in runs)
            {
                var ms = run.Outcomes.Where(o => o.Success).Select(seconds).OfType<double>().Select(s => s * 1000).Order().ToArray();
                if (ms.Length == 0) continue;
                var fractions = Enumerable.Range(1, ms.Length).Select(i => (double)i / ms.Length).ToArray();
                var line = plot.Add.ScatterLine(ms, fractions);
                line.LegendText = label;
            }
            plot.Title($"{name.ToUpperInvariant()} CDF");
            plot.XLabel($"{name.ToUpperInvariant()} (ms)");
            plot.YLabel("fraction of requests");
            plot.ShowLegend(Alignment.LowerRight);
            files.Add(Save(plot, directory, $"{prefix}{name}_cdf.png"));
        }
        return files;
    }

    /// A metric against the request rate, one line per labelled series (one point per rate).
    public static string VersusRate(string directory, string fileName, string yLabel,
        IReadOnlyList<(string Label, IReadOnlyList<(double Rate, double Value)> Points)> series)
    {
        var plot = new Plot();
        foreach (var (label, points) in series)
        {
            var line = plot.Add.Scatter(points.Select(p => p.Rate).ToArray(), points.Select(p => p.Value).ToArray());
            line.LegendText = label;
        }
        plot.Title($"{yLabel} vs request rate");
        plot.XLabel("request rate (req/s)");
        plot.YLabel(yLabel);
        plot.ShowLegend(Alignment.UpperLeft);
        return Save(plot, directory, fileName);
    }

    static string Save(Plot plot, string directory, string fileName)
    {
        var path = Path.Combine(directory, fileName);
        ChartFont.Save(plot, path);
        return path;
    }
}
