using System.Globalization;

namespace Serving.LoadGen.Soak;

/// One look at the server: its engine gauges from /metrics, and, when the soak runs on the server's machine
/// (--server-pid), the process's resident memory and thread count from /proc.
internal sealed record SoakSample(double ElapsedSeconds, long Requests, long ServerErrors, double KVUsage, int Running, int Waiting,
    long? RssBytes, int? Threads);

internal sealed class SoakMonitor(HttpClient http, int? serverPid)
{
    public async Task<SoakSample> SampleAsync(double elapsed, long requests, long serverErrors, CancellationToken cancellationToken)
    {
        var metrics = await http.GetStringAsync("metrics", cancellationToken);
        var (rss, threads) = ProcessFigures();
        return new SoakSample(elapsed, requests, serverErrors, Gauge(metrics, "serving_engine_kv_cache_usage"),
            (int)Gauge(metrics, "serving_engine_requests_running"), (int)Gauge(metrics, "serving_engine_requests_waiting"), rss, threads);
    }

    /// The value of a gauge in Prometheus text ("name{labels} value"); 0 when absent.
    internal static double Gauge(string metrics, string name)
    {
        foreach (var line in metrics.Split('\n'))
        {
            if (!line.StartsWith(name, StringComparison.Ordinal) || line.Length <= name.Length || line[name.Length] is not ('{' or ' ')) continue;
            return double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        return 0;
    }

    (long? Rss, int? Threads) ProcessFigures()
    {
        if (serverPid is not { } pid || !File.Exists($"/proc/{pid}/status")) return (null, null);
        long? rss = null;
        int? threads = null;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
            if (line.StartsWith("Threads:", StringComparison.Ordinal)) threads = int.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1].Trim());
        }
        return (rss, threads);
    }
}
