using Serving.Server.Options;
using Serving.Server.Tests.Options;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Cors;

/// Cross-origin requests through real Kestrel, as a browser sends them: a preflight (OPTIONS, no API key), then the
/// request with its Origin. By default any origin may call the API (vLLM's default); the flags narrow it.
public sealed class CorsTests
{
    const string Page = "https://app.example";

    static HttpRequestMessage Preflight(string origin, string path = "/v1/chat/completions") => new(HttpMethod.Options, path)
    {
        Headers =
        {
            { "Origin", origin }, { "Access-Control-Request-Method", "POST" },
            { "Access-Control-Request-Headers", "authorization,content-type" },
        },
    };

    static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : null;

    [Fact]
    public async Task AnyOriginMayCallTheApiByDefaultAndPreflightsNeedNoKey()
    {
        await using var server = await RunningServer.StartAsync(model: "llama-gqa");
        using var anonymous = server.NewClient(apiKey: null);

        using var preflight = await anonymous.SendAsync(Preflight(Page));
        Assert.Equal(204, (int)preflight.StatusCode);
        Assert.Equal("*", Header(preflight, "Access-Control-Allow-Origin"));
        Assert.Contains("POST", Header(preflight, "Access-Control-Allow-Methods"));
        Assert.Contains("authorization", Header(preflight, "Access-Control-Allow-Headers"), StringComparison.OrdinalIgnoreCase);

        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Origin", Page } } };
        using var answer = await server.Http.SendAsync(request);
        Assert.Equal(200, (int)answer.StatusCode);
        Assert.Equal("*", Header(answer, "Access-Control-Allow-Origin"));

        // an error answer carries the header too, so the page can read the OpenAI-shaped error
        using var unauthorized = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Origin", Page } } };
        using var refused = await anonymous.SendAsync(unauthorized);
        Assert.Equal(401, (int)refused.StatusCode);
        Assert.Equal("*", Header(refused, "Access-Control-Allow-Origin"));
    }

    [Fact]
    public async Task TheFlagsNarrowOriginsAndAllowCredentials()
    {
        await using var server = await RunningServer.StartAsync(["--allowed-origins", $"[\"{Page}\"]", "--allow-credentials",
            "--allowed-methods", """["GET", "POST"]"""], model: "llama-gqa");
        using var allowed = await server.Http.SendAsync(Preflight(Page));
        Assert.Equal(Page, Header(allowed, "Access-Control-Allow-Origin"));
        Assert.Equal("true", Header(allowed, "Access-Control-Allow-Credentials"));
        using var other = await server.Http.SendAsync(Preflight("https://other.example"));
        Assert.Null(Header(other, "Access-Control-Allow-Origin"));
        var delete = Preflight(Page);
        delete.Headers.Remove("Access-Control-Request-Method");
        delete.Headers.Add("Access-Control-Request-Method", "DELETE");
        using var deleted = await server.Http.SendAsync(delete);
        // the browser compares the methods the answer lists with the one it asked for
        Assert.Equal("GET,POST", Header(deleted, "Access-Control-Allow-Methods"));
    }

    [Fact]
    public void ListsThatAreNotJsonListsAreStartUpErrors()
    {
        IReadOnlyList<string> Errors(params string[] flags) => ServerCommandLineTests.Bind(ServerCommandLine.ToConfiguration(flags)).Validate();
        Assert.Contains("allowed-origins must be a JSON list of strings, e.g. [\"*\"] (got https://a.example)",
            Errors("--allowed-origins", "https://a.example"));
        Assert.Contains("allowed-headers must be a JSON list of strings, e.g. [\"*\"] (got [1])", Errors("--allowed-headers", "[1]"));
        Assert.Empty(Errors("--allowed-origins", """["https://a.example", "http://localhost:3000"]"""));
    }
}
