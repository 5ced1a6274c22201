using static Serving.Deploy.Tests.Support.Yaml;

namespace Serving.Deploy.Tests.Support;

/// The HTTP routes and Prometheus metric names the deployment files mention, with where each comes from.
internal static class Mentions
{
    public static IEnumerable<(string Source, string Route)> Routes()
    {
        foreach (var set in DeploymentFiles.ManifestSetNames)
        {
            var documents = DeploymentFiles.ManifestSet(set);
            var container = DeploymentFiles.ServerContainer(documents);
            foreach (var probe in new[] { "startupProbe", "livenessProbe", "readinessProbe" })
                if (StringAt(container, probe, "httpGet", "path") is { } path) yield return ($"{set} {probe}", path);
            var annotations = MapAt(DeploymentFiles.Single(documents, "Deployment"), "spec", "template", "metadata", "annotations");
            yield return ($"{set} prometheus.io/path", (string)annotations["prometheus.io/path"]!);
        }
        foreach (var job in ListAt(DeploymentFiles.PrometheusConfig(), "scrape_configs").Where(ScrapesServer))
            yield return ("compose prometheus.yml", StringAt(job, "metrics_path") ?? "/metrics");
        var healthCheck = DeploymentFiles.Dockerfile().HealthCheck!;
        var url = healthCheck[healthCheck.IndexOf("http://", StringComparison.Ordinal)..].Split('"', ' ')[0];
        yield return ("Dockerfile HEALTHCHECK", "/" + url.Split('/', 4)[3]);
    }

    public static bool ScrapesServer(object? job) =>
        ListAt(job, "static_configs").SelectMany(c => ListAt(c, "targets")).Any(t => t!.ToString()!.StartsWith("serving:", StringComparison.Ordinal));

    public static IEnumerable<(string Source, string Metric)> Metrics()
    {
        var dashboard = DeploymentFiles.Dashboard();
        foreach (var panel in dashboard["panels"]!.AsArray())
            foreach (var target in panel!["targets"]!.AsArray())
                foreach (var metric in PromQl.MetricNames(target!["expr"]!.GetValue<string>()))
                    yield return ($"dashboard panel '{panel["title"]}'", metric);
        foreach (var variable in dashboard["templating"]!["list"]!.AsArray())
            foreach (var metric in PromQl.MetricNames(variable!["query"]!["query"]!.GetValue<string>()))
                yield return ($"dashboard variable '{variable["name"]}'", metric);
        foreach (var metric in AdapterRules.QueriedMetricNames())
            yield return ("prometheus-adapter rules", metric);
        foreach (var set in DeploymentFiles.ManifestSetNames)
            foreach (var hpa in DeploymentFiles.ManifestSet(set).Where(d => (string?)d["kind"] == "HorizontalPodAutoscaler"))
                foreach (var metric in ListAt(hpa, "spec", "metrics"))
                    yield return ($"{set} HPA", StringAt(metric, "pods", "metric", "name")!);
    }
}
