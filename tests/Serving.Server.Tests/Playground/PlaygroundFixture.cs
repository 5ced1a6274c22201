using Microsoft.Playwright;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Playground;

/// One server and one browser for the page's tests. The server runs the tiny-gqa preset (random weights), whose
/// greedy answers never end early, with its context raised from 4096 to ContextLength tokens (--hf-overrides): an
/// answer of that length takes a minute or more on two cores, so a slow browser's Stop still finds it running (at
/// 4096 tokens the whole answer took 6-8 s, and a browser starved by the other test projects once took 34 s to click).
public sealed class PlaygroundFixture : IAsyncLifetime
{
    public const string Model = "tiny-gqa";
    public const int ContextLength = 32768;

    IPlaywright? _playwright;

    public RunningServer Server { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await RunningServer.StartAsync(["--hf-overrides", $$"""{"max_position_embeddings": {{ContextLength}}}"""], model: Model);
        _playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        Browser = await Chromium.LaunchAsync(_playwright);
        // generous: CI shares two cores with other test projects, and each new context length is slow the first time
        Assertions.SetDefaultExpectTimeout(30_000);
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        _playwright?.Dispose();
        if (Server is not null) await Server.DisposeAsync();
    }

    /// The page in a new browser context, from this fixture's server unless another is given; with a key typed in.
    public async Task<PlaygroundPage> OpenAsync(string? apiKey = RunningServer.ApiKey, int width = 1280, int height = 900,
        RunningServer? server = null)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = (server ?? Server).BaseAddress.ToString(), ViewportSize = new ViewportSize { Width = width, Height = height },
        });
        context.SetDefaultTimeout(60_000);
        var page = new PlaygroundPage(context, await context.NewPageAsync());
        await page.Page.GotoAsync("/");
        if (apiKey is not null) await page.UseKeyAsync(apiKey);
        return page;
    }
}
