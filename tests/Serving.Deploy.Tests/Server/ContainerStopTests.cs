using Serving.Deploy.Tests.Support;

namespace Serving.Deploy.Tests.Server;

/// `docker stop` / a pod's termination: the image's STOPSIGNAL reaches the server (exec-form entrypoint,
/// no shell in between), which drains and exits 0 well within the time the deployments give it.
public sealed class ContainerStopTests
{
    [Fact]
    public async Task StopSignalDrainsAndExitsCleanly()
    {
        var image = DeploymentFiles.Dockerfile(DeploymentFiles.CpuImage);
        Assert.Equal("SIGTERM", image.StopSignal);
        await using var process = ContainerProcess.Start(image, Fixtures.Dir("llama-gqa"));
        using var client = new HttpClient();
        await process.WaitUntilOkAsync(client, "/health/ready", TimeSpan.FromSeconds(120), CancellationToken.None);

        process.Terminate();

        Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(20)), "server still running 20 s after SIGTERM:\n" + process.Output);
        Assert.Equal(0, process.ExitCode);
    }
}
