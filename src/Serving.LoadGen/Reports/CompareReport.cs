using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.LoadGen.Clients;
using Serving.LoadGen.Compare;
using Serving.LoadGen.Runner;
using Spectre.Console;

namespace Serving.LoadGen.Reports;

/// The side-by-side table, JSON and charts of `compare`.
internal static class CompareReport
{
    public static void WriteTable(IAnsiConsole console, Comparison comparison)
    {
        var (a, b) = (comparison.LabelA, comparison.LabelB);
        var table = new Table().Title($"{Markup.Escape(a)} vs {Markup.Escape(b)} (ratio = A/B, 95% paired bootstrap CI)")
            .AddColumn("rate").AddColumn("metric").AddColumn(new TableColumn($"A: {Markup.Escape(a)}").RightAligned())
            .AddColumn(new TableColumn($"B: {Markup.Escape(b)}").RightAligned()).AddColumn(new TableColumn("A/B").RightAligned())
            .AddColumn(new TableColumn("95% CI").RightAligned());
        ServerRows(table, comparison.ServerA, comparison.ServerB);
        foreach (var rate in comparison.Rates)
        {
            table.AddEmptyRow();
            var first = true;
            foreach (var (metric, e) in rate.Estimates)
            {
                table.AddRow(first ? $"{TraceRunner.RateText(rate.Rate)} req/s" : "", metric, F(e.A), F(e.B), Ratio(e.Ratio), $"{Ratio(e.Low)}-{Ratio(e.High)}");
                first = false;
            }
            table.AddRow("", "failed", $"{rate.MetricsA.Failed}", $"{rate.MetricsB.Failed}", "", "");
        }
        console.Write(table);
    }

    static void ServerRows(Table table, ServerInfo a, ServerInfo b)
    {
        table.AddRow("server", "KV heads / query heads", Heads(a), Heads(b), "", "");
        table.AddRow("", "KV bytes per token", N(a.KVBytesPerToken), N(b.KVBytesPerToken), Ratio((double?)a.KVBytesPerToken / b.KVBytesPerToken), "");
        table.AddRow("", "KV capacity (tokens)", N(a.KVCapacityTokens), N(b.KVCapacityTokens), Ratio((double?)a.KVCapacityTokens / b.KVCapacityTokens), "");
    }

    static string Heads(ServerInfo info) => $"{N(info.NumKVHeads)} / {N(info.NumAttentionHeads)}";
    static string N(long? value) => value?.ToString("N0", CultureInfo.InvariantCulture) ?? "n/a";
    static string F(double value) => double.IsFinite(value) ? value.ToString("0.00", CultureInfo.InvariantCulture) : "n/a";
    static string Ratio(double? value) => value is { } v && double.IsFinite(v) ? v.ToString("0.000", CultureInfo.InvariantCulture) : "n/a";

    public static JsonObject ToJson(Comparison comparison) => new()
    {
        ["date"] = DateTimeOffset.UtcNow.ToString("O"),
        ["label_a"] = comparison.LabelA,
        ["label_b"] = comparison.LabelB,
        ["server_a"] = MetricsJson.Server(comparison.ServerA),
        ["server_b"] = MetricsJson.Server(comparison.ServerB),
        ["rates"] = new JsonArray(comparison.Rates.Select(r => (JsonNode)new JsonObject
        {
            ["request_rate"] = double.IsPositiveInfinity(r.Rate) ? "inf" : r.Rate,
            ["a"] = MetricsJson.Metrics(r.MetricsA),
            ["b"] = MetricsJson.Metrics(r.MetricsB),
            ["ratios"] = new JsonArray(r.Estimates.Select(e => (JsonNode)new JsonObject
            {
                ["metric"] = e.Metric, ["a"] = Finite(e.Estimate.A), ["b"] = Finite(e.Estimate.B), ["ratio"] = Finite(e.Estimate.Ratio),
                ["ci_low"] = Finite(e.Estimate.Low), ["ci_high"] = Finite(e.Estimate.High),
            }).ToArray()),
        }).ToArray()),
    };

    static double? Finite(double value) => double.IsFinite(value) ? value : null;

    /// Writes the JSON and charts (CDFs of both at the highest rate; both curves against the rate).
    public static IReadOnlyList<string> Write(Comparison comparison, string? resultFile, string? chartDir)
    {
        var written = new List<string>();
        if (resultFile is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(resultFile))!);
            File.WriteAllText(resultFile, ToJson(comparison).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            written.Add(resultFile);
        }
        if (chartDir is null) return written;
        var last = comparison.Rates[^1];
        written.AddRange(Charts.LatencyCdfs(chartDir, "compare_", [(comparison.LabelA, last.RunA), (comparison.LabelB, last.RunB)]));
        foreach (var (metric, file) in new[] { ("output tok/s", "throughput"), ("TTFT p99 ms", "ttft_p99"), ("TPOT p99 ms", "tpot_p99") })
            written.Add(Charts.VersusRate(chartDir, $"compare_{file}_vs_rate.png", metric, Curves(comparison, metric)));
        return written;
    }

    static IReadOnlyList<(string, IReadOnlyList<(double, double)>)> Curves(Comparison comparison, string metric)
    {
        var finite = comparison.Rates.Where(r => double.IsFinite(r.Rate)).ToArray();
        (double, double)[] Points(Func<RatioEstimate, double> side) =>
            finite.Select(r => (r.Rate, side(r.Estimates.Single(e => e.Metric == metric).Estimate))).ToArray();
        return [(comparison.LabelA, Points(e => e.A)), (comparison.LabelB, Points(e => e.B))];
    }
}
