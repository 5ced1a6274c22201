using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Serving.Server.Errors;

namespace Serving.Server.OpenAI;

/// Reads a JSON request body. The content type must be JSON (415 otherwise): a browser page may POST a form or
/// text/plain cross-origin without asking first, but not JSON, so this keeps other sites' pages off an open
/// server. The body must be one JSON object. Malformed JSON, wrong types and invalid UTF-8 surface as
/// JsonException (400 with the path), a body over the limit as Kestrel's BadHttpRequestException (413). Fields the
/// request type does not have are ignored and named in a warning, as vLLM does.
internal static class RequestBody
{
    public static async Task<T> ReadAsync<T>(HttpContext context, JsonTypeInfo<T> typeInfo) where T : class
    {
        if (!context.Request.HasJsonContentType())
            throw new ApiException(StatusCodes.Status415UnsupportedMediaType, ErrorTypes.InvalidRequest,
                "The request body must be JSON, sent with Content-Type: application/json.", code: "unsupported_media_type");
        using var body = await ReadAllAsync(context);
        var json = body.GetBuffer().AsSpan(0, (int)body.Length);
        var value = JsonSerializer.Deserialize(json, typeInfo) ?? throw ApiException.BadRequest("The request body must be a JSON object.");
        if (IgnoredFields(json, typeInfo) is { Count: > 0 } ignored)
            Log.FieldsIgnored(context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(RequestBody)),
                string.Join(", ", ignored.Take(16)));
        return value;
    }

    /// The top-level fields of a JSON object that the type has no property for (the body parsed already).
    static List<string> IgnoredFields(ReadOnlySpan<byte> json, JsonTypeInfo typeInfo)
    {
        var ignored = new List<string>();
        if (typeInfo.Kind != JsonTypeInfoKind.Object) return ignored;
        var reader = new Utf8JsonReader(json);
        reader.Read();   // the object's start
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString()!;
            if (!typeInfo.Properties.Any(p => p.Name == name)) ignored.Add(name);
            reader.Skip();
        }
        return ignored;
    }

    /// The whole body in one array of its size, owned by this request: after a burst of large bodies it is
    /// ordinary garbage that the GC gives back (IdleMemoryTrimmer), where a pooled buffer (the parser's own, or
    /// Kestrel's blocks holding a body the parser waits on) would stay with the pool. Kestrel enforces the size
    /// limit while it is read.
    static async Task<MemoryStream> ReadAllAsync(HttpContext context)
    {
        var declared = context.Request.ContentLength;
        var limit = context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
        var capacity = declared is { } length && (limit is null || length <= limit) ? (int)length : 0;
        var body = new MemoryStream(capacity);
        try
        {
            await context.Request.Body.CopyToAsync(body, context.RequestAborted);
            return body;
        }
        catch
        {
            await body.DisposeAsync();
            throw;
        }
    }
}
