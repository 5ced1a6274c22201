using System.Text.Json;
using Microsoft.Playwright;
using Serving.Server.Tests.Support;
using static Microsoft.Playwright.Assertions;

namespace Serving.Server.Tests.Playground;

/// The playground as a person sees it: controls found by their labels, answers by their state. Disposing
/// fails the test if a script on the page threw.
public sealed class PlaygroundPage(IBrowserContext context, IPage page) : IAsyncDisposable
{
    readonly List<string> _scriptErrors = Track(page);

    public IPage Page => page;

    public ILocator Notice => page.Locator("#notice");
    public ILocator Error => page.Locator("#error");
    public ILocator Composer => page.GetByRole(AriaRole.Textbox, new() { Name = "Message", Exact = true });
    public ILocator SendButton => page.GetByRole(AriaRole.Button, new() { Name = "Send", Exact = true });
    public ILocator LastAnswer => page.Locator(".msg.assistant, .msg.completion").Last;

    public ILocator EngineStat(string key) => page.Locator($"#engine-facts [data-stat={key}]");
    public ILocator ModelFact(string key) => page.Locator($"#model-facts [data-fact={key}]");

    static List<string> Track(IPage page)
    {
        var errors = new List<string>();
        page.PageError += (_, error) => errors.Add(error);
        return errors;
    }

    public async Task UseKeyAsync(string key)
    {
        await page.GetByLabel("API key").FillAsync(key);
        await page.GetByRole(AriaRole.Button, new() { Name = "Use key" }).ClickAsync();
    }

    public async Task WaitUntilConnectedAsync() => await Expect(page.Locator("#model-badge")).ToContainTextAsync($"{RunningServer.Model} \u00b7 LlamaForCausalLM");

    public Task SetAsync(string label, string value) => page.GetByLabel(label, new() { Exact = true }).FillAsync(value);

    /// Types a message and presses Enter; returns the request the page sent.
    public async Task<JsonElement> SendAsync(string text)
    {
        await Composer.FillAsync(text);
        var request = await page.RunAndWaitForRequestAsync(() => Composer.PressAsync("Enter"),
            r => r.Method == "POST" && r.Url.Contains("/v1/", StringComparison.Ordinal));
        return request.PostDataJSON() ?? throw new InvalidOperationException("the request had no JSON body");
    }

    public async Task WaitForAnswerAsync(string state = "done", int timeoutMs = 60_000) =>
        await Expect(LastAnswer).ToHaveAttributeAsync("data-state", state, new() { Timeout = timeoutMs });

    /// Saves a PNG under SERVING_SCREENSHOTS when set (the committed screenshot in the server's docs comes from here).
    public async Task ScreenshotAsync(string name, bool fullPage = false)
    {
        if (Environment.GetEnvironmentVariable("SERVING_SCREENSHOTS") is not { Length: > 0 } dir) return;
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(dir, name + ".png"), FullPage = fullPage });
    }

    public async ValueTask DisposeAsync()
    {
        await context.DisposeAsync();
        Assert.True(_scriptErrors.Count == 0, "the page's scripts threw: " + string.Join(Environment.NewLine, _scriptErrors));
    }
}
