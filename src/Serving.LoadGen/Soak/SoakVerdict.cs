namespace Serving.LoadGen.Soak;

/// Whether a soak passed: no 5xx and no broken connections, every KV block free once the server is idle, and,
/// when the server's process was watched, resident memory and threads at the middle and end of the run within
/// Tolerance of the first sample (taken after one interval, once the JIT and pools have warmed up).
internal static class SoakVerdict
{
    public const double Tolerance = 0.10;

    public static IReadOnlyList<string> Failures(SoakReport report)
    {
        var failures = new List<string>();
        if (report.Count(SoakResult.ServerError) > 0) failures.Add($"{report.Count(SoakResult.ServerError)} server errors (5xx)");
        if (report.Count(SoakResult.TransportError) > 0) failures.Add($"{report.Count(SoakResult.TransportError)} broken connections");
        if (report.Count(SoakResult.Completed) == 0) failures.Add("no request completed");
        if (report.Idle.KVUsage != 0 || report.Idle.Running != 0 || report.Idle.Waiting != 0)
            failures.Add($"not idle after the run: KV usage {report.Idle.KVUsage:P1}, {report.Idle.Running} running, {report.Idle.Waiting} waiting");
        if (Points(report) is { } points)
        {
            Flat("RSS", points.Select(p => (double?)p.RssBytes), failures);
            Flat("threads", points.Select(p => (double?)p.Threads), failures);
        }
        return failures;
    }

    /// Start, middle and end of the run, when the process was watched and there are three samples.
    public static IReadOnlyList<SoakSample>? Points(SoakReport report) =>
        report.Samples.Count >= 3 && report.Samples[0].RssBytes is not null
            ? [report.Samples[0], report.Samples[report.Samples.Count / 2], report.Samples[^1]]
            : null;

    static void Flat(string name, IEnumerable<double?> values, List<string> failures)
    {
        var list = values.Select(v => v ?? 0).ToList();
        var worst = list.Skip(1).Max(v => Math.Abs(v - list[0]) / Math.Max(1, list[0]));
        if (worst > Tolerance) failures.Add($"{name} moved {worst:P0} from the start ({string.Join(" / ", list.Select(v => v.ToString("F0")))})");
    }
}
