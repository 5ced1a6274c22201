using System.Diagnostics;
using Microsoft.Playwright;

namespace Serving.Server.Tests.Playground;

/// Debian's chromium, driven by Playwright's bundled driver (it downloads no browser of its own). The first
/// launch in a test run runs install-chromium.sh, which installs the package when it is missing and returns
/// at once when it is there; a machine where it cannot be installed fails the browser tests, saying why.
public static class Chromium
{
    public const string ExecutablePath = "/usr/bin/chromium";

    /// Without the background-networking flags chromium keeps calling out, which a closed network refuses.
    static readonly string[] Args =
    [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ];

    static readonly Lazy<Task> Installed = new(InstallAsync);

    /// A headless browser with a fresh profile (Playwright makes a new user-data-dir per launch).
    public static async Task<IBrowser> LaunchAsync(IPlaywright playwright)
    {
        await Installed.Value;
        return await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath, Headless = true, ChromiumSandbox = false, Args = Args,
        });
    }

    static async Task InstallAsync()
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Playground", "install-chromium.sh");
        using var process = Process.Start(new ProcessStartInfo("bash", [script])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        }) ?? throw new InvalidOperationException($"could not start bash {script}");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0 || !File.Exists(ExecutablePath))
            throw new InvalidOperationException(
                $"The playground's browser tests need Debian's chromium at {ExecutablePath}; {script} exited with " +
                $"{process.ExitCode}:{Environment.NewLine}{await output}{await errors}");
    }
}
