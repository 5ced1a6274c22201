using System.Text;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http.Features;

namespace Serving.Server.Streaming;

/// Server-sent events as OpenAI streams them: each payload is "data: {json}\n\n", the stream ends with
/// "data: [DONE]\n\n"; the Responses API names each event ("event: response.output_text.delta\n" before its data)
/// and sends no [DONE]. Every event is flushed at once so a client sees each token as it is made.
internal sealed class SseWriter(HttpResponse response)
{
    static readonly byte[] DataPrefix = "data: "u8.ToArray();
    static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    public static readonly byte[] Done = Encoding.UTF8.GetBytes("data: [DONE]\n\n");

    public Task StartAsync(CancellationToken cancellationToken)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        response.HttpContext.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        return response.StartAsync(cancellationToken);
    }

    public Task WriteAsync<T>(T payload, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken) =>
        WriteRawAsync(Format(payload, typeInfo), cancellationToken);

    public Task WriteEventAsync<T>(string name, T payload, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken) =>
        WriteRawAsync([.. Encoding.UTF8.GetBytes($"event: {name}\n"), .. Format(payload, typeInfo)], cancellationToken);

    public Task WriteDoneAsync(CancellationToken cancellationToken) => WriteRawAsync(Done, cancellationToken);

    /// One event: "data: " + the compact JSON (never contains a newline) + a blank line.
    public static byte[] Format<T>(T payload, JsonTypeInfo<T> typeInfo)
    {
        var json = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(payload, typeInfo);
        return [.. DataPrefix, .. json, .. EventEnd];
    }

    async Task WriteRawAsync(byte[] bytes, CancellationToken cancellationToken)
    {
        await response.Body.WriteAsync(bytes, cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }
}
