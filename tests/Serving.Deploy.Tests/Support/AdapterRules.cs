using static Serving.Deploy.Tests.Support.Yaml;

namespace Serving.Deploy.Tests.Support;

/// deploy/kubernetes/prometheus-adapter-rules.yaml: the Prometheus adapter's rule file inside a ConfigMap.
internal static class AdapterRules
{
    public static List<object?> Rules()
    {
        var configMap = DeploymentFiles.Single(DeploymentFiles.KubernetesDocuments()
            .Where(d => StringAt(d, "metadata", "name") == "prometheus-adapter-serving-rules").ToList(), "ConfigMap");
        return ListAt(Documents(StringAt(configMap, "data", "config.yaml")!).Single(), "rules");
    }

    /// The metric names the adapter serves to the HPA (each rule's name.as).
    public static IReadOnlyList<string> ServedMetricNames() => Rules().Select(r => StringAt(r, "name", "as")!).ToList();

    /// The Prometheus series the rules read.
    public static IReadOnlyList<string> QueriedMetricNames() => Rules()
        .SelectMany(r => new[] { StringAt(r, "seriesQuery")!, StringAt(r, "metricsQuery")! })
        .SelectMany(PromQl.MetricNames).Distinct().ToList();
}
