using System.Text;
using Microsoft.AspNetCore.Http;
using Serving.Server.Errors;
using Serving.Server.OpenAI;
using Serving.Server.Streaming;

namespace Serving.Server.Tests.Streaming;

public sealed class SseWriterTests
{
    [Fact]
    public void AnEventIsOneDataLineAndABlankLine()
    {
        var chunk = new ChatChunk("id-1", 7, "m", [new ChatChunkChoice(0, new ChatDelta(null, "a\nb"), null, null, null)], null);
        var text = Encoding.UTF8.GetString(SseWriter.Format(chunk, OpenAIJsonContext.Default.ChatChunk));
        Assert.StartsWith("data: {", text);
        Assert.EndsWith("}\n\n", text);
        Assert.Equal(2, text.Count(c => c == '\n'));   // the newline inside content is escaped in JSON
        Assert.Contains("\"object\":\"chat.completion.chunk\"", text);
        Assert.Contains("\"delta\":{\"content\":\"a\\nb\"}", text);
        Assert.Contains("\"finish_reason\":null", text);
        Assert.Equal("data: [DONE]\n\n", Encoding.UTF8.GetString(SseWriter.Done));
    }

    [Fact]
    public async Task WritesAreFlushedPerEventWithEventStreamHeaders()
    {
        var context = new DefaultHttpContext();
        var body = new MemoryStream();
        context.Response.Body = body;
        var sse = new SseWriter(context.Response);
        await sse.StartAsync(CancellationToken.None);
        await sse.WriteAsync(new ErrorResponse(new ErrorBody("x", "server_error", null, null)), OpenAIJsonContext.Default.ErrorResponse, CancellationToken.None);
        await sse.WriteDoneAsync(CancellationToken.None);
        Assert.StartsWith("text/event-stream", context.Response.ContentType);
        Assert.Equal("no-cache", context.Response.Headers.CacheControl.ToString());
        var text = Encoding.UTF8.GetString(body.ToArray());
        Assert.Equal("data: {\"error\":{\"message\":\"x\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\ndata: [DONE]\n\n", text);
    }
}
