using System.Globalization;
using Serving.LoadGen.Metrics;
using Spectre.Console;

namespace Serving.LoadGen.Reports;

/// The serve report on the console: vLLM's "Serving Benchmark Result" block as a table, then failures.
internal static class MetricsTable
{
    public static void Write(IAnsiConsole console, string title, BenchmarkMetrics m)
    {
        var table = new Table().Title(title).AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        Row(table, "Successful requests", m.Completed.ToString(CultureInfo.InvariantCulture));
        Row(table, "Failed requests", m.Failed.ToString(CultureInfo.InvariantCulture));
        Row(table, "Benchmark duration (s)", F(m.DurationSeconds));
        Row(table, "Total input tokens", m.TotalInputTokens.ToString(CultureInfo.InvariantCulture));
        Row(table, "Total generated tokens", m.TotalOutputTokens.ToString(CultureInfo.InvariantCulture));
        Row(table, "Request throughput (req/s)", F(m.RequestThroughput));
        if (m.RequestGoodput is { } goodput) Row(table, "Request goodput (req/s)", F(goodput));
        Row(table, "Output token throughput (tok/s)", F(m.OutputThroughput));
        Row(table, "Total token throughput (tok/s)", F(m.TotalTokenThroughput));
        Latency(table, "Time to First Token", "TTFT", m.Ttft);
        Latency(table, "Time per Output Token (excl. 1st token)", "TPOT", m.Tpot);
        Latency(table, "Inter-token Latency", "ITL", m.Itl);
        Latency(table, "End-to-end Latency", "E2EL", m.E2el);
        console.Write(table);
        if (m.Errors.Count == 0) return;
        var errors = new Table().Title("Failed requests").AddColumn("count").AddColumn("error");
        foreach (var error in m.Errors) errors.AddRow(error.Count.ToString(CultureInfo.InvariantCulture), Markup.Escape(error.Message));
        console.Write(errors);
    }

    static void Latency(Table table, string section, string name, LatencySummary summary)
    {
        table.AddRow(new Markup($"[bold]{section}[/]"), new Text(""));
        Row(table, $"Mean {name} (ms)", F(summary.Mean));
        Row(table, $"Median {name} (ms)", F(summary.Median));
        foreach (var (p, value) in summary.Percentiles.OrderBy(p => p.Key))
            Row(table, $"P{MetricsJson.PercentileName(p)} {name} (ms)", F(value));
    }

    static void Row(Table table, string name, string value) => table.AddRow(Markup.Escape(name), value);

    public static string F(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
}
