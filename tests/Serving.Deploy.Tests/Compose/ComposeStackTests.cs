using Serving.Deploy.Tests.Support;
using static Serving.Deploy.Tests.Support.Yaml;

namespace Serving.Deploy.Tests.Compose;

/// The compose services find each other: Prometheus scrapes the server where it listens, the server sends
/// OTLP to the collector's receiver, Grafana reads Prometheus and the mounted dashboards, and every file a
/// service mounts exists.
public sealed class ComposeStackTests
{
    static readonly Dictionary<string, object?> Compose = DeploymentFiles.Compose();

    static Dictionary<string, object?> Service(string name) => MapAt(Compose, "services", name);

    static string Port(string endpoint) => endpoint.Split("://")[^1].Split('/')[0].Split(':')[1];

    [Fact]
    public void PrometheusScrapesTheServerServiceOnThePortItListensOn()
    {
        var options = ServerContract.Bind(ServerLaunches.Named("compose"));
        var targets = ListAt(DeploymentFiles.PrometheusConfig(), "scrape_configs").Where(Mentions.ScrapesServer)
            .SelectMany(j => ListAt(j, "static_configs")).SelectMany(c => ListAt(c, "targets")).ToList();
        Assert.Equal([$"serving:{options.Port}"], targets.Select(t => t!.ToString()));
    }

    [Fact]
    public void TheServerSendsOtlpToTheCollectorsGrpcReceiverWhichExportsTraces()
    {
        var collector = DeploymentFiles.CollectorConfig();
        var endpoint = StringAt(Service("serving"), "environment", "OTEL_EXPORTER_OTLP_ENDPOINT")!;
        Assert.StartsWith("http://otel-collector:", endpoint);
        Assert.Equal(Port(StringAt(collector, "receivers", "otlp", "protocols", "grpc", "endpoint")!), Port(endpoint));

        var traces = MapAt(collector, "service", "pipelines", "traces");
        Assert.Contains("otlp", ListAt(traces, "receivers"));
        foreach (var exporter in ListAt(traces, "exporters"))
            Assert.True(MapAt(collector, "exporters").ContainsKey(exporter!.ToString()!), $"exporter {exporter} is not defined");
        var jaeger = StringAt(collector, "exporters", "otlp/jaeger", "endpoint")!;
        Assert.Contains(jaeger.Split(':')[0], MapAt(Compose, "services").Keys);
    }

    [Fact]
    public void GrafanaReadsPrometheusAndTheMountedDashboards()
    {
        var datasources = DocumentsIn(RepoPaths.Deploy("compose", "grafana", "provisioning", "datasources", "datasources.yaml")).Single();
        var prometheus = ListAt(datasources, "datasources").Single(d => StringAt(d, "type") == "prometheus");
        var prometheusPort = ListAt(Service("prometheus"), "ports").Single()!.ToString()!.Split(':')[1];
        Assert.Equal($"http://prometheus:{prometheusPort}", StringAt(prometheus, "url"));

        var providers = DocumentsIn(RepoPaths.Deploy("compose", "grafana", "provisioning", "dashboards", "dashboards.yaml")).Single();
        var dashboardPath = StringAt(providers, "providers", 0, "options", "path")!;
        Assert.Contains(ListAt(Service("grafana"), "volumes"), v => v!.ToString()!.Split(':')[1] == dashboardPath);
        var home = StringAt(Service("grafana"), "environment", "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")!;
        Assert.True(File.Exists(RepoPaths.Deploy("compose", "grafana", "dashboards", Path.GetFileName(home))));
    }

    [Fact]
    public void EveryFileAServiceMountsExists()
    {
        foreach (var (name, service) in MapAt(Compose, "services"))
            foreach (var volume in ListAt(service, "volumes").Select(v => v!.ToString()!))
            {
                var source = volume.Split(':')[0];
                if (!source.StartsWith("./", StringComparison.Ordinal)) continue; // ${MODEL_DIR}: the user's checkpoint
                Assert.True(Path.Exists(RepoPaths.Deploy("compose", source[2..])), $"{name} mounts missing {source}");
            }
    }
}
