using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.LoadGen.Clients;
using Serving.LoadGen.Commands;
using Serving.LoadGen.Metrics;
using Serving.LoadGen.Runner;

namespace Serving.LoadGen.Reports;

/// One request rate's run of `serve` and its metrics.
internal sealed record RateResult(double Rate, BenchmarkRun Run, BenchmarkMetrics Metrics);

/// The result file and charts of `serve`.
internal static class ServeReport
{
    public static JsonObject ToJson(Endpoint endpoint, ServerInfo server, TraceSettings trace, IReadOnlyList<RateResult> results) => new()
    {
        ["date"] = DateTimeOffset.UtcNow.ToString("O"),
        ["backend"] = endpoint.Backend,
        ["base_url"] = endpoint.BaseUrl.ToString(),
        ["model_id"] = server.ModelId,
        ["server"] = MetricsJson.Server(server),
        ["dataset_name"] = trace.Dataset.Name,
        ["num_prompts"] = trace.Dataset.NumPrompts,
        ["seed"] = trace.Dataset.Seed,
        ["burstiness"] = trace.Burstiness,
        ["max_concurrency"] = trace.MaxConcurrency,
        ["ignore_eos"] = trace.IgnoreEos,
        ["goodput"] = trace.Slo?.ToString(),
        ["runs"] = new JsonArray(results.Select(r => (JsonNode)RunJson(r)).ToArray()),
    };

    static JsonObject RunJson(RateResult result)
    {
        var json = MetricsJson.Metrics(result.Metrics);
        json["request_rate"] = double.IsPositiveInfinity(result.Rate) ? "inf" : result.Rate;
        foreach (var (key, value) in MetricsJson.Requests(result.Run)) json[key] = value?.DeepClone();
        return json;
    }

    /// Writes the JSON and the charts the settings ask for; returns the paths written.
    public static IReadOnlyList<string> Write(Endpoint endpoint, ServerInfo server, TraceSettings trace, IReadOnlyList<RateResult> results)
    {
        var written = new List<string>();
        if (trace.ResultFile is { } resultFile)
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(resultFile))!;
            Directory.CreateDirectory(directory);
            File.WriteAllText(resultFile, ToJson(endpoint, server, trace, results).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            written.Add(resultFile);
        }
        if (trace.ChartDir is not { } chartDir) return written;
        written.AddRange(Charts.LatencyCdfs(chartDir, "serve_",
            results.Select(r => ($"{TraceRunner.RateText(r.Rate)} req/s", r.Run)).ToArray()));
        var finite = results.Where(r => double.IsFinite(r.Rate)).ToArray();
        if (finite.Length > 1)
            written.Add(Charts.VersusRate(chartDir, "serve_throughput_vs_rate.png", "output tokens/s",
                [(server.ModelId, finite.Select(r => (r.Rate, r.Metrics.OutputThroughput)).ToArray())]));
        return written;
    }
}
