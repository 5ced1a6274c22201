using Serving.Deploy.Tests.Support;
using Serving.Server.Options;

namespace Serving.Deploy.Tests.Server;

/// Every flag and environment variable a deployment gives the server is one the server defines, with a
/// value it accepts, and the ports and grace periods around it agree with what it is told.
public sealed class LaunchConfigurationTests
{
    public static TheoryData<string> Launches => ServerLaunches.Names;

    [Theory, MemberData(nameof(Launches))]
    public void EveryFlagIsAServerFlag(string source)
    {
        var launch = ServerLaunches.Named(source);
        var unknown = launch.Args.Where(a => a.StartsWith("--", StringComparison.Ordinal))
            .Select(a => a.Split('=')[0]).Where(f => !ServerContract.FlagNames.Contains(f)).ToList();
        Assert.True(unknown.Count == 0, $"{source}: not server flags: {string.Join(", ", unknown)}");
        ServerCommandLine.ToConfiguration([.. launch.Args]); // the server's parser accepts the values too
    }

    [Theory, MemberData(nameof(Launches))]
    public void EveryEnvironmentVariableIsAServerSettingOrReadByThePlatform(string source)
    {
        var launch = ServerLaunches.Named(source);
        var foreign = launch.Environment.Keys
            .Where(k => !k.StartsWith(ServerContract.EnvironmentPrefix, StringComparison.Ordinal))
            .Where(k => !ServerContract.PlatformVariables.ContainsKey(k)).ToList();
        Assert.True(foreign.Count == 0, $"{source}: unknown variables: {string.Join(", ", foreign)}");
        // Binding with ErrorOnUnknownConfiguration names any Server__ key that ServerOptions lacks.
        var exception = Record.Exception(() => ServerContract.Bind(launch));
        Assert.True(exception == null, $"{source}: {exception?.Message}");
    }

    [Theory, MemberData(nameof(Launches))]
    public void EachLaunchConfiguresOptionsTheServerAccepts(string source)
    {
        var options = ServerContract.Bind(ServerLaunches.Named(source));
        // The checkpoint lives on the mounted volume; here the fixture stands in for it, as in the live test.
        if (options.Model?.StartsWith("/models", StringComparison.Ordinal) == true) options.Model = Fixtures.Dir("llama-gqa");
        Assert.Empty(options.Validate());
        Assert.Equal("0.0.0.0", options.Host); // reachable from outside the container
    }

    /// The manifests scrape /metrics without credentials (prometheus.io annotations, the compose Prometheus), so no
    /// launch may require the API key there, whether or not it sets one.
    [Theory, MemberData(nameof(Launches))]
    public void EachLaunchLeavesMetricsScrapableWithoutTheKey(string source) =>
        Assert.False(ServerContract.Bind(ServerLaunches.Named(source)).EnableMetricsAuth, source);

    [Theory, MemberData(nameof(Launches))]
    public void DeclaredPortsAreThePortsTheServerListensOn(string source)
    {
        var launch = ServerLaunches.Named(source);
        var options = ServerContract.Bind(launch);
        if (source.StartsWith("Dockerfile", StringComparison.Ordinal)) return; // EXPOSE: see The_image_exposes_...
        Assert.Equal(ListeningPorts(options), launch.DeclaredPorts.Values.Order());
        if (launch.DeclaredPorts.TryGetValue("http", out var http)) Assert.Equal(options.Port, http);
        if (launch.DeclaredPorts.TryGetValue("grpc", out var grpc)) Assert.Equal(options.GrpcPort, (int)grpc);
    }

    [Theory]
    [InlineData(DeploymentFiles.CudaImage)]
    [InlineData(DeploymentFiles.CpuImage)]
    public void TheImageExposesAndHealthChecksThePortsItConfigures(string flavour)
    {
        var image = DeploymentFiles.Dockerfile(flavour);
        var options = ServerContract.Bind(ServerLaunches.Named(ServerLaunches.ImageLaunch(flavour)));
        Assert.Equal(flavour, options.Device);
        Assert.Equal(ListeningPorts(options), image.ExposedPorts.Select(p => (long)p).Order());
        Assert.Contains($"${{{ServerContract.EnvironmentPrefix}Port}}", image.HealthCheck);
        Assert.Equal("/models", image.Environment[$"{ServerContract.EnvironmentPrefix}Model"]);
    }

    /// The HTTP port, and the gRPC port when the server serves gRPC (then every deployment must expose it).
    static IEnumerable<long> ListeningPorts(ServerOptions options) =>
        new long[] { options.Port }.Concat(options.GrpcPort is { } grpc ? [grpc] : []).Order();

    [Theory, MemberData(nameof(Launches))]
    public void StoppingWaitsLongerThanTheServerDrains(string source)
    {
        var launch = ServerLaunches.Named(source);
        var drain = ServerContract.Bind(launch).ShutdownTimeout;
        if (source.StartsWith("Dockerfile", StringComparison.Ordinal)) return; // `docker stop -t` decides (see README)
        var grace = source.StartsWith("compose", StringComparison.Ordinal) ? ComposeStopGrace() : KubernetesGrace(source);
        Assert.True(grace > drain, $"{source}: {grace} s to stop, but the server drains for up to {drain} s");
    }

    static double ComposeStopGrace() =>
        TimeSpan.Parse("00:00:" + Yaml.StringAt(DeploymentFiles.Compose(), "services", "serving", "stop_grace_period")!.TrimEnd('s')).TotalSeconds;

    /// Pod grace period minus the preStop sleep: the time SIGTERM leaves the server.
    static double KubernetesGrace(string set)
    {
        var documents = DeploymentFiles.ManifestSet(set);
        var pod = Yaml.MapAt(DeploymentFiles.Single(documents, "Deployment"), "spec", "template", "spec");
        var preStop = Yaml.ListAt(DeploymentFiles.ServerContainer(documents), "lifecycle", "preStop", "exec", "command");
        Assert.Equal("sleep", preStop[0]);
        return (long)pod["terminationGracePeriodSeconds"]! - double.Parse(preStop[1]!.ToString()!);
    }
}
