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
        Assert.Equal(accepted, new BearerKey("s3cret").IsAuthorized(header));

    [Theory]
    [InlineData(false, new[] { "/health", "/health/ready", "/version", "/metrics" })]
    [InlineData(true, new[] { "/health", "/health/ready", "/version" })]
    public async Task OperatorRoutesAreOpenAndOtherRoutesAnswer401WithTheErrorShape(bool metricsAuth, string[] open)
    {
        var passed = new List<string>();
        var middleware = new ApiKeyMiddleware(ctx => { passed.Add(ctx.Request.Path); return Task.CompletedTask; }, new BearerKey("k"),
            new ServerOptions { EnableMetricsAuth = metricsAuth });
        foreach (var path in new[] { "/health", "/health/ready", "/version", "/metrics", "/v1/models", "/tokenize" })
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
}
