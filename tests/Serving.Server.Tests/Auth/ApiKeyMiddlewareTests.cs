using Microsoft.AspNetCore.Http;
using Serving.Server.Auth;
using Serving.Server.Options;

namespace Serving.Server.Tests.Auth;

public sealed class ApiKeyMiddlewareTests
{
    [Theory]
    [InlineData("Bearer s3cret", true)]
    [InlineData("bearer s3cret", true)]
    [InlineData("Bearer  s3cret ", true)]
    [InlineData("Bearer s3cre", false)]
    [InlineData("Bearer s3cret2", false)]
    [InlineData("Basic s3cret", false)]
    [InlineData("s3cret", false)]
    [InlineData("", false)]
    public void OnlyTheExactBearerKeyIsAccepted(string header, bool accepted) =>
        Assert.Equal(accepted, new BearerKey(["s3cret"]).IsAuthorized(header));

    /// vLLM's --api-key takes several keys: any one of them is accepted.
    [Fact]
    public void AnyOfSeveralKeysIsAccepted()
    {
        var key = new BearerKey(["first", "second"]);
        Assert.True(key.IsAuthorized("Bearer first"));
        Assert.True(key.IsAuthorized("Bearer second"));
        Assert.False(key.IsAuthorized("Bearer third"));
        var options = Serving.Server.Tests.Options.ServerCommandLineTests.Bind(ServerCommandLine.ToConfiguration(["--api-key", "first", "second"]));
        Assert.Equal(["first", "second"], options.ApiKeys);
        Assert.Contains("api-key must not be empty", Serving.Server.Tests.Options.ServerCommandLineTests.Bind(ServerCommandLine.ToConfiguration(["--api-key", " "])).Validate());
    }

    [Theory]
    [InlineData(false, new[] { "/health", "/health/ready", "/load", "/version", "/metrics" })]
    [InlineData(true, new[] { "/health", "/health/ready", "/load", "/version" })]
    public async Task OperatorRoutesAreOpenAndOtherRoutesAnswer401WithTheErrorShape(bool metricsAuth, string[] open)
    {
        var passed = new List<string>();
        var middleware = new ApiKeyMiddleware(ctx => { passed.Add(ctx.Request.Path); return Task.CompletedTask; }, new BearerKey(["k"]),
            new ServerOptions { EnableMetricsAuth = metricsAuth });
        foreach (var path in new[] { "/health", "/health/ready", "/load", "/version", "/metrics", "/v1/models", "/tokenize" })
        {
            var context = new DefaultHttpContext { Request = { Path = path } };
            context.Response.Body = new MemoryStream();
            await middleware.InvokeAsync(context);
            if (open.Contains(path)) continue;
            Assert.Equal(401, context.Response.StatusCode);
            Assert.Equal("Bearer", context.Response.Headers.WWWAuthenticate.ToString());
            var body = System.Text.Encoding.UTF8.GetString(((MemoryStream)context.Response.Body).ToArray());
            Assert.Contains("\"code\":\"invalid_api_key\"", body);
        }
        Assert.Equal(open, passed);
    }

    /// Without --api-key the server takes vLLM's VLLM_API_KEY variable.
    [Fact]
    public async Task TheVllmApiKeyVariableSetsTheKey()
    {
        await using var server = Serving.Server.Tests.Support.ServerProcess.Start([Serving.Tests.Shared.Fixtures.Dir("llama-gqa")],
            environment: new Dictionary<string, string> { ["VLLM_API_KEY"] = "from-env" });
        await server.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = server.BaseAddress };
        Assert.Equal(401, (int)(await client.GetAsync("/v1/models")).StatusCode);
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "from-env");
        Assert.Equal(200, (int)(await client.GetAsync("/v1/models")).StatusCode);
    }
}
