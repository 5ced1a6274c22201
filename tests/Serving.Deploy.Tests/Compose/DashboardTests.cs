using System.Text.Json.Nodes;
using Serving.Deploy.Tests.Support;

namespace Serving.Deploy.Tests.Compose;

/// The provisioned Grafana dashboard shows what an operator of an LLM server watches, from the provisioned
/// Prometheus datasource.
public sealed class DashboardTests
{
    static readonly JsonObject Dashboard = DeploymentFiles.Dashboard();

    static IEnumerable<JsonNode> Panels => Dashboard["panels"]!.AsArray().Select(p => p!);

    static IEnumerable<string> MetricsOf(JsonNode panel) => panel["targets"]!.AsArray()
        .SelectMany(t => PromQl.MetricNames(t!["expr"]!.GetValue<string>()));

    [Theory]
    [InlineData("TTFT", "gen_ai_server_time_to_first_token_seconds_bucket")]
    [InlineData("TPOT", "gen_ai_server_time_per_output_token_seconds_bucket")]
    [InlineData("throughput", "serving_engine_generation_tokens_total")]
    [InlineData("running", "serving_engine_requests_running")]
    [InlineData("waiting", "serving_engine_requests_waiting")]
    [InlineData("KV cache", "serving_engine_kv_cache_usage")]
    [InlineData("Preemptions", "serving_engine_preemptions_total")]
    [InlineData("Prefix cache", "serving_engine_prefix_cache_hits_total")]
    public void APanelTitledForEachSignalPlotsItsMetric(string titleWord, string metric)
    {
        var panel = Panels.FirstOrDefault(p => p["title"]!.GetValue<string>().Contains(titleWord, StringComparison.OrdinalIgnoreCase));
        Assert.True(panel != null, $"no panel titled with '{titleWord}'");
        Assert.Contains(metric, MetricsOf(panel));
    }

    [Fact]
    public void PanelsHaveUniqueIdsQueriesAndTheProvisionedPrometheusDatasource()
    {
        var provisioned = Yaml.ListAt(Yaml.DocumentsIn(RepoPaths.Deploy("compose", "grafana", "provisioning", "datasources", "datasources.yaml")).Single(), "datasources")
            .ToDictionary(d => Yaml.StringAt(d, "uid")!, d => Yaml.StringAt(d, "type")!);
        var panels = Panels.ToList();
        Assert.Equal(panels.Count, panels.Select(p => p["id"]!.GetValue<int>()).Distinct().Count());
        foreach (var panel in panels)
        {
            Assert.NotEmpty(panel["targets"]!.AsArray());
            var uid = panel["datasource"]!["uid"]!.GetValue<string>();
            Assert.Equal("prometheus", provisioned[uid]);
            Assert.Equal(provisioned[uid], panel["datasource"]!["type"]!.GetValue<string>());
        }
    }

    [Fact]
    public void MetricNamesAreReadOutOfPromqlAndAdapterTemplates()
    {
        Assert.Equal(["a_bucket"], PromQl.MetricNames("histogram_quantile(0.9, sum by (le) (rate(a_bucket{instance=~\"$x\"}[$__rate_interval])))"));
        Assert.Equal(["hits_total", "queries_total"], PromQl.MetricNames("sum(rate(hits_total[5m])) / clamp_min(sum(rate(queries_total[5m])), 1e-9)"));
        Assert.Equal(["running"], PromQl.MetricNames("label_values(running, instance)"));
        Assert.Empty(PromQl.MetricNames("max by (<<.GroupBy>>) (max_over_time(<<.Series>>{<<.LabelMatchers>>}[1m]))"));
    }
}
