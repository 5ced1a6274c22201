using System.Diagnostics;
using System.Reflection;
using Serving.Deploy.Tests.Support;

namespace Serving.Deploy.Tests.Build;

/// `dotnet publish -o DIR` works however DIR is written: the build step that marks libLibTorchSharp's GLIBCXX
/// requirement weak (build/GlibcxxWeakVersion.targets) globbed "$(PublishDir)**", which is no glob without the
/// trailing slash, and failed the publish. The published server then runs.
public sealed class PublishTests
{
    [Fact]
    public async Task PublishingToAFolderGivenWithoutATrailingSlashSucceedsAndTheServerRuns()
    {
        var output = Path.Combine(Path.GetTempPath(), $"serving-publish-{Guid.NewGuid():N}");
        try
        {
            var configuration = typeof(PublishTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
            var (code, log) = await RunAsync("dotnet", ["publish", Path.Combine(RepoPaths.Root, "src", "Serving.Server"),
                "-c", configuration, "--no-build", "-o", output]);
            Assert.True(code == 0, log);
            var (helpCode, help) = await RunAsync("dotnet", [Path.Combine(output, "Serving.Server.dll"), "--help"]);
            Assert.True(helpCode == 0, help);
            Assert.Contains("--max-connections", help);
        }
        finally
        {
            if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
        }
    }

    static async Task<(int Code, string Log)> RunAsync(string file, string[] args)
    {
        var start = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}
