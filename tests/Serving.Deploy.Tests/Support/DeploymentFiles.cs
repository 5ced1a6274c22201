using System.Text.Json.Nodes;
using Serving.Deploy.Tests.Support.Helm;

namespace Serving.Deploy.Tests.Support;

/// The files under deploy/ (and the Dockerfile), loaded as data. The chart is rendered in two variants that
/// between them take every branch of its templates.
internal static class DeploymentFiles
{
    public const string ReleaseName = "serving";

    /// values.yaml as shipped: GPU, autoscaling on, no API key.
    public const string DefaultVariant = "default";

    /// CPU-only, fixed replicas, API key from a Secret, a node selector.
    public const string CpuVariant = "cpu";

    public static readonly IReadOnlyDictionary<string, string?> ChartVariants = new Dictionary<string, string?>
    {
        [DefaultVariant] = null,
        [CpuVariant] = """
            gpus: 0
            image: {tag: cpu}
            replicaCount: 1
            autoscaling: {enabled: false}
            apiKeySecret: serving-api-key
            nodeSelector: {kubernetes.io/arch: amd64}
            flags: {device: cpu, dtype: float32, kv-cache-memory: 1073741824}
            """,
    };

    public static HelmChart Chart => new(RepoPaths.Deploy("helm", "serving"));

    /// The rendered chart as one stream, rendered once per variant and test run (and written then to
    /// artifacts/deploy/chart-VARIANT.yaml for validate.sh).
    public static string RenderChart(string variant) => RenderedCharts[variant].Value;

    static readonly IReadOnlyDictionary<string, Lazy<string>> RenderedCharts =
        ChartVariants.Keys.ToDictionary(variant => variant, variant => new Lazy<string>(() =>
        {
            var rendered = HelmChart.Join("serving", Chart.Render(ReleaseName, ChartVariants[variant]));
            Directory.CreateDirectory(RepoPaths.Artifacts());
            File.WriteAllText(RepoPaths.Artifacts($"chart-{variant}.yaml"), rendered);
            return rendered;
        }));

    public static List<Dictionary<string, object?>> ChartDocuments(string variant) => Yaml.Documents(RenderChart(variant));

    /// Every API object in deploy/kubernetes (the kustomization file is kustomize's, not an object).
    public static List<Dictionary<string, object?>> KubernetesDocuments() =>
        Directory.GetFiles(RepoPaths.Deploy("kubernetes"), "*.yaml").Order(StringComparer.Ordinal)
            .Where(f => Path.GetFileName(f) != "kustomization.yaml")
            .SelectMany(Yaml.DocumentsIn).ToList();

    /// Names of the manifest sets the tests hold to the same rules: the plain manifests and each chart variant.
    public static IReadOnlyList<string> ManifestSetNames => [PlainManifests, .. ChartVariants.Keys.Select(v => ChartPrefix + v)];

    public const string PlainManifests = "kubernetes";
    const string ChartPrefix = "helm:";

    public static List<Dictionary<string, object?>> ManifestSet(string name) =>
        name == PlainManifests ? KubernetesDocuments() : ChartDocuments(name[ChartPrefix.Length..]);

    public static Dictionary<string, object?> Compose() => Yaml.DocumentsIn(RepoPaths.Deploy("compose", "compose.yaml")).Single();

    public static Dictionary<string, object?> ComposeGpu() => Yaml.DocumentsIn(RepoPaths.Deploy("compose", "compose.gpu.yaml")).Single();

    public static Dictionary<string, object?> PrometheusConfig() =>
        Yaml.DocumentsIn(RepoPaths.Deploy("compose", "prometheus", "prometheus.yml")).Single();

    public static Dictionary<string, object?> CollectorConfig() =>
        Yaml.DocumentsIn(RepoPaths.Deploy("compose", "otel-collector", "config.yaml")).Single();

    public static JsonObject Dashboard() =>
        JsonNode.Parse(File.ReadAllText(RepoPaths.Deploy("compose", "grafana", "dashboards", "serving.json")))!.AsObject();

    public const string CudaImage = "cuda";
    public const string CpuImage = "cpu";

    /// The image built with --build-arg TORCH_FLAVOUR=flavour (the tag the deployments use for it).
    public static DockerfileModel Dockerfile(string flavour = CudaImage) =>
        new(File.ReadAllText(RepoPaths.Dockerfile), new Dictionary<string, string> { ["TORCH_FLAVOUR"] = flavour });

    public static Dictionary<string, object?> Single(List<Dictionary<string, object?>> documents, string kind) =>
        documents.Single(d => (string?)d["kind"] == kind);

    /// The server container of a manifest set's Deployment.
    public static Dictionary<string, object?> ServerContainer(List<Dictionary<string, object?>> documents) =>
        (Dictionary<string, object?>)Yaml.ListAt(Single(documents, "Deployment"), "spec", "template", "spec", "containers")
            .Cast<Dictionary<string, object?>>().Single(c => (string?)c["name"] == "server");
}
