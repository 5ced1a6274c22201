using System.Net;
using Serving.Deploy.Tests.Support;

namespace Serving.Deploy.Tests.Server;

/// Against the real server started from the image's entrypoint on CPU with the fixture model: the routes
/// the deployments probe and scrape answer, and every metric the dashboard and autoscaler read is exported.
[Collection(LiveServerCollection.Name)]
public sealed class LiveServerTests(LiveServer server)
{
    [Fact]
    public void TheImageEntrypointServesCompletionsOnCpuWithTheFixtureModel()
    {
        var choice = server.Completion["choices"]![0]!;
        Assert.Equal("length", choice["finish_reason"]!.GetValue<string>());
        Assert.Equal(4, server.Completion["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task EveryRouteTheDeploymentsProbeOrScrapeAnswers200()
    {
        var routes = Mentions.Routes().ToList();
        Assert.Contains(routes, r => r.Route == "/metrics");
        foreach (var (source, route) in routes)
        {
            using var response = await server.Client.GetAsync(route);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{source}: GET {route} gave {(int)response.StatusCode}");
        }
    }

    [Fact]
    public void EveryMetricTheDashboardAdapterAndAutoscalerReadIsExported()
    {
        var metrics = Mentions.Metrics().ToList();
        Assert.NotEmpty(metrics);
        var missing = metrics.Where(m => !server.ScrapedSeries.Contains(m.Metric))
            .Select(m => $"{m.Source}: {m.Metric}").Distinct().ToList();
        Assert.True(missing.Count == 0, "not in /metrics:\n" + string.Join('\n', missing)
            + "\nexported:\n" + string.Join('\n', server.ScrapedSeries.Order(StringComparer.Ordinal)));
    }
}
