using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Serving.Engine;
using Serving.Server.Errors;
using Serving.Server.OpenAI;

namespace Serving.Server.Tests.Errors;

public sealed class ErrorMappingTests
{
    [Fact]
    public void EngineExceptionsMapToTheirDocumentedStatus()
    {
        Assert.Equal((400, "top_p"), Map(new InvalidRequestException("bad", "top_p")));
        Assert.Equal((429, null), Map(new QueueFullException("full")));
        Assert.Equal((503, null), Map(new EngineUnavailableException("loading")));
        Assert.Equal((500, null), Map(new RequestFailedException("boom")));
        Assert.Equal((500, null), Map(new InvalidOperationException("bug")));
        Assert.Equal((413, null), Map(new BadHttpRequestException("too big", 413)));
    }

    [Fact]
    public void AJsonTypeErrorIs400NamingTheField()
    {
        var json = Assert.ThrowsAny<JsonException>(() =>
            JsonSerializer.Deserialize("""{"max_tokens": "ten"}""", OpenAIJsonContext.Default.CompletionRequest));
        var error = ErrorMapping.ToApiException(json);
        Assert.Equal((400, "max_tokens"), (error.Status, error.Param));
        Assert.DoesNotContain("Path:", error.Message);
    }

    [Fact]
    public async Task TheBodyIsOpenaiShapedWithRetryAfterOn429()
    {
        var context = new DefaultHttpContext();
        var body = new MemoryStream();
        context.Response.Body = body;
        await ErrorWriter.WriteAsync(context, ErrorMapping.ToApiException(new QueueFullException("queue is full")));
        Assert.Equal(429, context.Response.StatusCode);
        Assert.Equal("1", context.Response.Headers.RetryAfter.ToString());
        using var doc = JsonDocument.Parse(body.ToArray());
        var error = doc.RootElement.GetProperty("error");
        Assert.Equal("queue is full", error.GetProperty("message").GetString());
        Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        Assert.Equal("queue_full", error.GetProperty("code").GetString());
    }

    static (int, string?) Map(Exception exception)
    {
        var error = ErrorMapping.ToApiException(exception);
        return (error.Status, error.Param);
    }
}
