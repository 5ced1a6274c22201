using Serving.Deploy.Tests.Support;
using static Serving.Deploy.Tests.Support.Yaml;

namespace Serving.Deploy.Tests.Kubernetes;

/// Rules every manifest set (deploy/kubernetes and each chart variant) keeps: the objects point at each
/// other correctly, probes and Services use ports the container declares, GPUs are requested whole.
public sealed class ManifestConsistencyTests
{
    public static TheoryData<string> Sets => new(DeploymentFiles.ManifestSetNames);

    static Dictionary<string, object?> PodLabels(List<Dictionary<string, object?>> documents) =>
        MapAt(DeploymentFiles.Single(documents, "Deployment"), "spec", "template", "metadata", "labels");

    static void AssertSelects(Dictionary<string, object?> selector, Dictionary<string, object?> labels, string what)
    {
        Assert.NotEmpty(selector);
        foreach (var (key, value) in selector)
            Assert.True(labels.TryGetValue(key, out var label) && Equals(label, value), $"{what} selector {key}={value} misses the pods");
    }

    [Theory, MemberData(nameof(Sets))]
    public void DeploymentServiceAndDisruptionBudgetSelectTheServerPods(string set)
    {
        var documents = DeploymentFiles.ManifestSet(set);
        var labels = PodLabels(documents);
        var deployment = DeploymentFiles.Single(documents, "Deployment");

        AssertSelects(MapAt(deployment, "spec", "selector", "matchLabels"), labels, "Deployment");
        AssertSelects(MapAt(DeploymentFiles.Single(documents, "Service"), "spec", "selector"), labels, "Service");
        AssertSelects(MapAt(DeploymentFiles.Single(documents, "PodDisruptionBudget"), "spec", "selector", "matchLabels"), labels, "PDB");
        foreach (var hpa in documents.Where(d => (string?)d["kind"] == "HorizontalPodAutoscaler"))
        {
            Assert.Equal("Deployment", StringAt(hpa, "spec", "scaleTargetRef", "kind"));
            Assert.Equal(StringAt(deployment, "metadata", "name"), StringAt(hpa, "spec", "scaleTargetRef", "name"));
        }
    }

    [Theory, MemberData(nameof(Sets))]
    public void ServicePortsAndProbesUsePortsTheContainerDeclares(string set)
    {
        var documents = DeploymentFiles.ManifestSet(set);
        var container = DeploymentFiles.ServerContainer(documents);
        var ports = ListAt(container, "ports").Cast<Dictionary<string, object?>>()
            .ToDictionary(p => (string)p["name"]!, p => (long)p["containerPort"]!);
        Assert.Contains("http", ports.Keys);
        Assert.All(ports.Keys, name => Assert.Contains(name, new[] { "http", "grpc" }));

        foreach (var port in ListAt(DeploymentFiles.Single(documents, "Service"), "spec", "ports").Cast<Dictionary<string, object?>>())
        {
            Assert.Contains((string)port["targetPort"]!, ports.Keys);
            Assert.Equal(ports[(string)port["targetPort"]!], (long)port["port"]!); // same number inside and out
        }
        foreach (var probe in new[] { "livenessProbe", "readinessProbe" })
            Assert.Equal("http", StringAt(container, probe, "httpGet", "port"));
        // Startup waits for the model: gRPC health when the pod serves gRPC, else HTTP readiness.
        if (ports.TryGetValue("grpc", out var grpc))
            Assert.Equal(grpc, At(container, "startupProbe", "grpc", "port"));
        else
            foreach (var key in new[] { "path", "port" })
                Assert.Equal(StringAt(container, "readinessProbe", "httpGet", key), StringAt(container, "startupProbe", "httpGet", key));
        var annotations = MapAt(DeploymentFiles.Single(documents, "Deployment"), "spec", "template", "metadata", "annotations");
        Assert.Equal(ports["http"].ToString(), annotations["prometheus.io/port"]);
    }

    [Theory, MemberData(nameof(Sets))]
    public void GpusAreRequestedAndLimitedAlikeAndThePodRunsAsTheImageUser(string set)
    {
        var documents = DeploymentFiles.ManifestSet(set);
        var container = DeploymentFiles.ServerContainer(documents);
        Assert.Equal(At(container, "resources", "requests", "nvidia.com/gpu"), At(container, "resources", "limits", "nvidia.com/gpu"));

        var podSecurity = MapAt(DeploymentFiles.Single(documents, "Deployment"), "spec", "template", "spec", "securityContext");
        Assert.Equal(true, podSecurity["runAsNonRoot"]);
        var imageUser = DeploymentFiles.Dockerfile().FinalStage.Last(i => i.Keyword == "USER").Arguments.Split(':')[0];
        Assert.Equal(imageUser, podSecurity["runAsUser"]!.ToString());
        Assert.Equal(false, At(container, "securityContext", "allowPrivilegeEscalation"));
    }

    [Theory, MemberData(nameof(Sets))]
    public void ModelsAreMountedReadOnlyAtModels(string set)
    {
        var documents = DeploymentFiles.ManifestSet(set);
        var mount = ListAt(DeploymentFiles.ServerContainer(documents), "volumeMounts").Cast<Dictionary<string, object?>>()
            .Single(m => (string?)m["mountPath"] == "/models");
        Assert.Equal(true, mount["readOnly"]);
        var volume = ListAt(DeploymentFiles.Single(documents, "Deployment"), "spec", "template", "spec", "volumes")
            .Cast<Dictionary<string, object?>>().Single(v => Equals(v["name"], mount["name"]));
        Assert.NotNull(StringAt(volume, "persistentVolumeClaim", "claimName"));
    }

    [Theory, MemberData(nameof(Sets))]
    public void AutoscalerMetricsAreServedByThePrometheusAdapterRules(string set)
    {
        var served = AdapterRules.ServedMetricNames();
        foreach (var hpa in DeploymentFiles.ManifestSet(set).Where(d => (string?)d["kind"] == "HorizontalPodAutoscaler"))
            foreach (var metric in ListAt(hpa, "spec", "metrics"))
            {
                Assert.Equal("Pods", StringAt(metric, "type"));
                Assert.Contains(StringAt(metric, "pods", "metric", "name")!, served);
            }
    }
}
