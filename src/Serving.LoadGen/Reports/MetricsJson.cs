using System.Globalization;
using System.Text.Json.Nodes;
using Serving.LoadGen.Clients;
using Serving.LoadGen.Metrics;
using Serving.LoadGen.Runner;

namespace Serving.LoadGen.Reports;

/// JSON forms of metrics and runs, with vLLM's result-file key names (mean_ttft_ms, p99_tpot_ms, ...).
internal static class MetricsJson
{
    public static JsonObject Metrics(BenchmarkMetrics m)
    {
        var json = new JsonObject
        {
            ["num_prompts"] = m.NumRequests,
            ["completed"] = m.Completed,
            ["failed"] = m.Failed,
            ["duration"] = m.DurationSeconds,
            ["total_input_tokens"] = m.TotalInputTokens,
            ["total_output_tokens"] = m.TotalOutputTokens,
            ["request_throughput"] = m.RequestThroughput,
            ["request_goodput"] = m.RequestGoodput,
            ["output_throughput"] = m.OutputThroughput,
            ["total_token_throughput"] = m.TotalTokenThroughput,
        };
        AddLatency(json, "ttft", m.Ttft);
        AddLatency(json, "tpot", m.Tpot);
        AddLatency(json, "itl", m.Itl);
        AddLatency(json, "e2el", m.E2el);
        json["error_summary"] = new JsonArray(m.Errors.Select(e => (JsonNode)new JsonObject { ["message"] = e.Message, ["count"] = e.Count }).ToArray());
        return json;
    }

    static void AddLatency(JsonObject json, string name, LatencySummary summary)
    {
        json[$"mean_{name}_ms"] = summary.Mean;
        json[$"median_{name}_ms"] = summary.Median;
        json[$"std_{name}_ms"] = summary.Std;
        foreach (var (p, value) in summary.Percentiles)
            json[$"p{PercentileName(p)}_{name}_ms"] = value;
    }

    public static string PercentileName(double p) => p.ToString("0.###", CultureInfo.InvariantCulture);

    /// Per-request arrays as vLLM writes them (seconds), in trace order.
    public static JsonObject Requests(BenchmarkRun run) => new()
    {
        ["input_lens"] = Array(run.Outcomes.Select(o => (JsonNode)o.PromptLength)),
        ["output_lens"] = Array(run.Outcomes.Select(o => (JsonNode)o.OutputTokens)),
        ["sent_at"] = Array(run.Outcomes.Select(o => (JsonNode)o.SentAt)),
        ["ttfts"] = Array(run.Outcomes.Select(o => (JsonNode)o.Ttft)),
        ["e2els"] = Array(run.Outcomes.Select(o => (JsonNode)o.Latency)),
        ["itls"] = Array(run.Outcomes.Select(o => (JsonNode)Array(o.Itl.Select(x => (JsonNode)x)))),
        ["errors"] = Array(run.Outcomes.Select(o => (JsonNode?)o.Error)),
    };

    public static JsonObject Server(ServerInfo info) => new()
    {
        ["model"] = info.ModelId,
        ["max_model_len"] = info.MaxModelLen,
        ["num_attention_heads"] = info.NumAttentionHeads,
        ["num_key_value_heads"] = info.NumKVHeads,
        ["head_dim"] = info.HeadDim,
        ["dtype"] = info.Dtype,
        ["block_size"] = info.BlockSize,
        ["kv_bytes_per_token"] = info.KVBytesPerToken,
        ["kv_capacity_tokens"] = info.KVCapacityTokens,
    };

    static JsonArray Array(IEnumerable<JsonNode?> items) => new(items.ToArray());
}
