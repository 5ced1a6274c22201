using Serving.Deploy.Tests.Support;
using static Serving.Deploy.Tests.Support.Yaml;

namespace Serving.Deploy.Tests.Helm;

/// The chart renders to the objects operators expect, and its parameters reach them.
public sealed class ChartTests
{
    [Fact]
    public void DefaultValuesRenderAGpuDeploymentScaledByTheAutoscaler()
    {
        var documents = DeploymentFiles.ChartDocuments(DeploymentFiles.DefaultVariant);

        Assert.Equal(["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"],
            documents.Select(d => (string)d["kind"]!).Order(StringComparer.Ordinal));
        var deployment = DeploymentFiles.Single(documents, "Deployment");
        Assert.Null(At(deployment, "spec", "replicas")); // the HPA owns the replica count
        var container = DeploymentFiles.ServerContainer(documents);
        Assert.Equal(1L, At(container, "resources", "requests", "nvidia.com/gpu"));
        Assert.Equal(1L, At(container, "resources", "limits", "nvidia.com/gpu"));
        var args = ListAt(container, "args").Cast<string>().ToList();
        Assert.Equal("/models/llama-3.1-8b-instruct", args[args.IndexOf("--model") + 1]);
        Assert.Equal("true", args[args.IndexOf("--enable-prefix-caching") + 1]);
        Assert.Equal(2L, At(DeploymentFiles.Single(documents, "HorizontalPodAutoscaler"), "spec", "minReplicas"));
    }

    [Fact]
    public void CpuValuesDropTheGpuAndAutoscalerAndWireTheApiKeySecret()
    {
        var documents = DeploymentFiles.ChartDocuments(DeploymentFiles.CpuVariant);

        Assert.DoesNotContain(documents, d => (string?)d["kind"] == "HorizontalPodAutoscaler");
        Assert.Equal(1L, At(DeploymentFiles.Single(documents, "Deployment"), "spec", "replicas"));
        var container = DeploymentFiles.ServerContainer(documents);
        Assert.Null(At(container, "resources", "requests", "nvidia.com/gpu"));
        Assert.Null(At(container, "resources", "limits", "nvidia.com/gpu"));
        Assert.Equal("serving-api-key", StringAt(container, "env", 0, "valueFrom", "secretKeyRef", "name"));
        var args = ListAt(container, "args").Cast<string>().ToList();
        Assert.Equal("cpu", args[args.IndexOf("--device") + 1]);
        Assert.Equal("amd64", StringAt(DeploymentFiles.Single(documents, "Deployment"),
            "spec", "template", "spec", "nodeSelector", "kubernetes.io/arch"));
    }

    [Fact]
    public void EveryValueInValuesYamlIsUsedByATemplate()
    {
        var templates = string.Concat(Directory.GetFiles(RepoPaths.Deploy("helm", "serving", "templates"))
            .Select(File.ReadAllText));
        var unused = Leaves(DeploymentFiles.Chart.Values, ".Values")
            .Where(path => !UsedBy(templates, path)).ToList();
        Assert.Empty(unused);
    }

    /// Paths of the values a template can reach: a map under flags, env, resources, nodeSelector or
    /// tolerations is used whole (ranged over or printed with toYaml).
    static IEnumerable<string> Leaves(Dictionary<string, object?> map, string prefix)
    {
        foreach (var (key, value) in map)
        {
            var path = $"{prefix}.{key}";
            if (value is Dictionary<string, object?> child && !UsedWhole(path)) foreach (var leaf in Leaves(child, path)) yield return leaf;
            else yield return path;
        }
    }

    static bool UsedWhole(string path) => path is ".Values.flags" or ".Values.env" or ".Values.resources.requests"
        or ".Values.resources.limits" or ".Values.nodeSelector";

    static bool UsedBy(string templates, string path) =>
        System.Text.RegularExpressions.Regex.IsMatch(templates, System.Text.RegularExpressions.Regex.Escape(path) + @"(?![\w.])");
}
