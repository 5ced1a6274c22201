using System.Globalization;
using System.Text.RegularExpressions;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Telemetry;

/// /metrics carries the GenAI request metrics and the engine's gauges and counters with sane values.
[Collection("server")]
public sealed partial class MetricsTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    [Fact]
    public async Task MetricsNameTheGenaiConventionsAndEngineStatsWithSaneValues()
    {
        var (status, _) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello world", max_tokens = 8, ignore_eos = true,
        });
        Assert.Equal(200, status);
        // The engine publishes its stats after each step, so the last one may trail the response by a step.
        await _server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0);
        var text = await _server.Http.GetStringAsync("/metrics");

        // Other tests of the collection may have added chats and completions; this one added a completion.
        const string completions = "gen_ai_operation_name=\"text_completion\"";
        // the histograms hold every completion of the collection's server so far: their means are sane, not their sums
        // (a long run under load adds up to more than a minute of time to first token)
        Assert.True(Sample(text, "gen_ai_server_time_to_first_token_seconds_count", completions) >= 1, text);
        Assert.InRange(Mean(text, "gen_ai_server_time_to_first_token_seconds", completions), 1e-6, 60);
        Assert.True(Sample(text, "gen_ai_server_time_per_output_token_seconds_count", completions) >= 1);
        Assert.InRange(Mean(text, "gen_ai_server_time_per_output_token_seconds", completions), 1e-7, 60);
        Assert.True(Sample(text, "gen_ai_server_request_duration_seconds_count", completions) >= 1);
        Assert.True(Sample(text, "gen_ai_client_token_usage_sum", completions, "gen_ai_token_type=\"output\"") >= 8);
        Assert.True(Sample(text, "gen_ai_client_token_usage_sum", completions, "gen_ai_token_type=\"input\"") >= 8);

        Assert.InRange(Sample(text, "serving_engine_kv_cache_usage"), 0, 1);
        Assert.InRange(Sample(text, "serving_engine_kv_cache_free_blocks"), 1, Sample(text, "serving_engine_kv_cache_blocks"));
        Assert.Equal(0, Sample(text, "serving_engine_requests_running"));
        Assert.Equal(0, Sample(text, "serving_engine_requests_waiting"));
        Assert.InRange(Sample(text, "serving_engine_prefix_cache_hit_rate"), 0, 1);
        Assert.True(Sample(text, "serving_engine_preemptions") >= 0);
        Assert.True(Sample(text, "serving_engine_prompt_tokens") >= 8);
        Assert.True(Sample(text, "serving_engine_generation_tokens") >= 8);
    }

    /// A histogram's mean: its _sum over its _count.
    static double Mean(string text, string histogram, params string[] labels) =>
        Sample(text, histogram + "_sum", labels) / Sample(text, histogram + "_count", labels);

    /// The sum of the samples whose name starts with the given one (any unit/_total suffix) and whose labels contain
    /// every one of labels: every series of those labels, whatever else it is labelled with (the model, an error type),
    /// since the collection's other tests add series beside this test's own.
    static double Sample(string text, string name, params string[] labels)
    {
        var values = SampleLine().Matches(text)
            .Where(match => match.Groups["name"].Value.StartsWith(name, StringComparison.Ordinal) && labels.All(match.Groups["labels"].Value.Contains))
            .Select(match => double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture)).ToList();
        return values.Count > 0 ? values.Sum() : throw new Xunit.Sdk.XunitException($"no sample {name}{{{string.Join(",", labels)}}} in:\n{text}");
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>[^ \n]+)", RegexOptions.Multiline)]
    private static partial Regex SampleLine();
}
