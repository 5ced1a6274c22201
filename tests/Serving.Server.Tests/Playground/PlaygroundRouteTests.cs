using System.Net;
using System.Text.RegularExpressions;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Playground;

/// The page's files over plain HTTP: public (the page asks for the key itself), locked down by their headers,
/// and the only thing open without the key: the API behind them still answers 401.
[Collection("server")]
public sealed partial class PlaygroundRouteTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    [GeneratedRegex("(?:src|href)=\"(playground/[^\"]+)\"")]
    private static partial Regex AssetReference();

    [GeneratedRegex("""from '\./([^']+)'""")]
    private static partial Regex ModuleImport();

    [Fact]
    public async Task ThePageAndEveryFileItLoadsAreServedWithoutTheKey()
    {
        using var anonymous = _server.NewClient(apiKey: null);
        using var page = await anonymous.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var html = await page.Content.ReadAsStringAsync();

        var files = new Queue<string>(AssetReference().Matches(html).Select(m => "/" + m.Groups[1].Value).Distinct());
        Assert.Contains("/playground/app.js", files);
        var seen = new HashSet<string>();
        while (files.TryDequeue(out var path))
        {
            if (!seen.Add(path)) continue;
            using var file = await anonymous.GetAsync(path);
            Assert.True(file.StatusCode == HttpStatusCode.OK, $"{path}: {(int)file.StatusCode}");
            Assert.Equal(path.EndsWith(".js", StringComparison.Ordinal) ? "text/javascript" : path.EndsWith(".css", StringComparison.Ordinal) ? "text/css" : "image/svg+xml",
                file.Content.Headers.ContentType?.MediaType);
            if (!path.EndsWith(".js", StringComparison.Ordinal)) continue;
            foreach (Match import in ModuleImport().Matches(await file.Content.ReadAsStringAsync()))
                files.Enqueue("/playground/" + import.Groups[1].Value);
        }
        Assert.Contains("/playground/conversation.js", seen);   // imports were followed
    }

    [Fact]
    public async Task ThePageRunsOnlyItsOwnScriptsAndCannotBeFramed()
    {
        using var anonymous = _server.NewClient(apiKey: null);
        using var page = await anonymous.GetAsync("/");
        var policy = page.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("default-src 'self'", policy);
        Assert.Contains("frame-ancestors 'none'", policy);
        Assert.Equal("nosniff", page.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Equal("no-cache", page.Headers.CacheControl?.ToString());
        // revalidation is a 304 through the ETag
        using var again = new HttpRequestMessage(HttpMethod.Get, "/");
        again.Headers.IfNoneMatch.Add(page.Headers.ETag!);
        using var notModified = await anonymous.SendAsync(again);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
    }

    [Theory]
    [InlineData("GET", "/v1/engine/stats")]
    [InlineData("GET", "/v1/models")]
    [InlineData("POST", "/v1/chat/completions")]
    [InlineData("POST", "/")]
    [InlineData("POST", "/playground/app.js")]
    [InlineData("GET", "/playground/missing.js")]
    public async Task WithoutTheKeyNothingButThePagesFilesAnswers(string method, string path)
    {
        using var anonymous = _server.NewClient(apiKey: null);
        using var request = new HttpRequestMessage(new HttpMethod(method), path)
        {
            Content = method == "POST" ? RunningServer.Json(new { model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hi" } } }) : null,
        };
        using var response = await anonymous.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("invalid_api_key", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("/playground/..%2f..%2fappsettings.json")]
    [InlineData("/%2e%2e/%2e%2e/etc/passwd")]
    [InlineData("/playground/%00")]
    [InlineData("/playground/a:b")]
    [InlineData("/playground/")]
    [InlineData("/index.html/x")]
    public async Task OddPathsAreClientErrorsNever5xx(string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_server.BaseAddress + path.TrimStart('/'), UriKind.Absolute));
        using var response = await _server.Http.SendAsync(request);
        Assert.InRange((int)response.StatusCode, 400, 499);
    }

    [Fact]
    public async Task DisablePlaygroundLeavesThePageOut()
    {
        await using var server = await RunningServer.StartAsync(["--disable-playground"]);
        using var withKey = await server.Http.GetAsync("/");
        Assert.Equal(HttpStatusCode.NotFound, withKey.StatusCode);
        Assert.Contains("\"error\"", await withKey.Content.ReadAsStringAsync());
        using var anonymous = server.NewClient(apiKey: null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/playground/app.js")).StatusCode);
    }
}
