using Microsoft.Playwright;

namespace Serving.Server.Tests.Playground;

/// Debian's chromium, driven by Playwright's bundled driver (it downloads no browser of its own). The first
/// launch in a test run installs it (and a font to render text with) when missing (DebianPackages); a machine where
/// it cannot be installed fails the browser tests, saying why.
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
        await DebianPackages.InstallAsync("The playground's browser tests", nonFree: false, "chromium", "fonts-liberation");
        if (!File.Exists(ExecutablePath))
            throw new InvalidOperationException($"chromium is installed but not at {ExecutablePath}");
    }
}
