using System.Diagnostics;

namespace Serving.Tests.Shared;

/// Debian packages a test drives, installed on first use by install-debian-packages.sh (copied beside the test
/// assembly); a machine where they cannot be installed fails those tests, saying why.
public static class DebianPackages
{
    /// Installs the packages unless they are there. nonFree: they come from Debian's non-free section.
    public static async Task InstallAsync(string purpose, bool nonFree, params string[] packages)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Support", "install-debian-packages.sh");
        string[] arguments = [script, .. nonFree ? ["--non-free"] : Array.Empty<string>(), .. packages];
        using var process = Process.Start(new ProcessStartInfo("bash", arguments)
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        }) ?? throw new InvalidOperationException($"could not start bash {script}");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
            throw new InvalidOperationException(
                $"{purpose} need {string.Join(", ", packages)}; {script} exited with {process.ExitCode}:{Environment.NewLine}{await output}{await errors}");
    }
}
