using System.Text.RegularExpressions;
using static Serving.Deploy.Tests.Support.Yaml;

namespace Serving.Deploy.Tests.Support;

/// How one deployment starts the server: the environment the process sees and its arguments (after the
/// image's entrypoint), plus the ports that deployment declares for it.
internal sealed record ServerLaunch(
    string Source,
    IReadOnlyDictionary<string, string> Environment,
    IReadOnlyList<string> Args,
    IReadOnlyDictionary<string, long> DeclaredPorts);

/// Every launch the deployment files describe: the bare image, deploy/kubernetes, each chart variant, and
/// compose (CPU and with the GPU override). Each layers its settings over the image's ENV, as a container
/// runtime does; Kubernetes args replace the image's CMD.
internal static partial class ServerLaunches
{
    /// Value given to variables that come from a Secret (the value itself is not in the files).
    public const string SecretPlaceholder = "secret-from-a-kubernetes-secret";

    public static TheoryData<string> Names => new(All.Value.Select(l => l.Source));

    public static ServerLaunch Named(string source) => All.Value.Single(l => l.Source == source);

    /// Read from the files once per test run.
    static readonly Lazy<IReadOnlyList<ServerLaunch>> All = new(() => [.. Read()]);

    static IEnumerable<ServerLaunch> Read()
    {
        foreach (var flavour in new[] { DeploymentFiles.CudaImage, DeploymentFiles.CpuImage })
        {
            var image = DeploymentFiles.Dockerfile(flavour);
            yield return new ServerLaunch(ImageLaunch(flavour), image.Environment, image.Cmd, new Dictionary<string, long>());
        }
        foreach (var set in DeploymentFiles.ManifestSetNames)
            yield return FromKubernetes(set, DeploymentFiles.ManifestSet(set));
        var compose = DeploymentFiles.Compose();
        yield return FromCompose("compose", compose, null);
        yield return FromCompose("compose+gpu", compose, DeploymentFiles.ComposeGpu());
    }

    /// The launch name of the bare image of one flavour.
    public static string ImageLaunch(string flavour) => $"Dockerfile ({flavour})";

    /// "registry/serving:cpu" is the cpu image; any other tag the cuda one.
    static DockerfileModel ImageTagged(string image) =>
        DeploymentFiles.Dockerfile(image.Split(':')[^1] == DeploymentFiles.CpuImage ? DeploymentFiles.CpuImage : DeploymentFiles.CudaImage);

    static ServerLaunch FromKubernetes(string set, List<Dictionary<string, object?>> documents)
    {
        var container = DeploymentFiles.ServerContainer(documents);
        var image = ImageTagged(StringAt(container, "image")!);
        var environment = new Dictionary<string, string>(image.Environment);
        foreach (var source in ListAt(container, "envFrom"))
        {
            var name = StringAt(source, "configMapRef", "name");
            var configMap = documents.Single(d => (string?)d["kind"] == "ConfigMap" && StringAt(d, "metadata", "name") == name);
            foreach (var (key, value) in MapAt(configMap, "data")) environment[key] = value?.ToString() ?? "";
        }
        foreach (var variable in ListAt(container, "env"))
            environment[StringAt(variable, "name")!] = StringAt(variable, "value")
                ?? (At(variable, "valueFrom", "secretKeyRef") != null ? SecretPlaceholder
                    : throw new InvalidOperationException($"{set}: unsupported valueFrom"));
        var args = At(container, "args") is List<object?> list ? list.Select(a => a!.ToString()!).ToList() : image.Cmd.ToList();
        var ports = ListAt(container, "ports").ToDictionary(p => StringAt(p, "name")!, p => (long)At(p, "containerPort")!);
        return new ServerLaunch(set, environment, args, ports);
    }

    static ServerLaunch FromCompose(string source, Dictionary<string, object?> compose, Dictionary<string, object?>? overlay)
    {
        var tag = StringAt(overlay, "services", "serving", "image") ?? StringAt(compose, "services", "serving", "image")!;
        var image = ImageTagged(Interpolate(tag));
        var environment = new Dictionary<string, string>(image.Environment);
        foreach (var file in new[] { compose, overlay }.OfType<Dictionary<string, object?>>())
            foreach (var (key, value) in MapAt(file, "services", "serving", "environment"))
                environment[key] = Interpolate(value?.ToString() ?? "");
        var command = At(compose, "services", "serving", "command") as List<object?>;
        var args = command?.Select(a => Interpolate(a!.ToString()!)).ToList() ?? image.Cmd.ToList();
        // "HOST:CONTAINER" mappings; the container side is what the server must listen on.
        var ports = ListAt(compose, "services", "serving", "ports").Select(p => long.Parse(p!.ToString()!.Split(':')[^1]))
            .ToDictionary(p => p.ToString(), p => p);
        return new ServerLaunch(source, environment, args, ports);
    }

    /// Compose's ${NAME:-default} with NAME unset (what a plain `docker compose up` sees).
    public static string Interpolate(string value) => ComposeVariable().Replace(value, m => m.Groups["default"].Value);

    [GeneratedRegex(@"\$\{(?<name>\w+)(:?-(?<default>[^}]*))?\}")]
    private static partial Regex ComposeVariable();
}
