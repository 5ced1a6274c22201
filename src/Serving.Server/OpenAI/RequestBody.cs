using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Serving.Server.Errors;

namespace Serving.Server.OpenAI;

/// Reads a JSON request body. The content type must be JSON (415 otherwise): a browser page may POST a form or
/// text/plain cross-origin without asking first, but not JSON, so this keeps other sites' pages off an open
/// server. The body must be one JSON object. Malformed JSON, wrong types and invalid UTF-8 surface as
/// JsonException (400 with the path), a body over the limit as Kestrel's BadHttpRequestException (413).
internal static class RequestBody
{
    public static async Task<T> ReadAsync<T>(HttpContext context, JsonTypeInfo<T> typeInfo) where T : class
    {
        if (!context.Request.HasJsonContentType())
            throw new ApiException(StatusCodes.Status415UnsupportedMediaType, ErrorTypes.InvalidRequest,
                "The request body must be JSON, sent with Content-Type: application/json.", code: "unsupported_media_type");
        var value = await JsonSerializer.DeserializeAsync(context.Request.Body, typeInfo, context.RequestAborted);
        return value ?? throw ApiException.BadRequest("The request body must be a JSON object.");
    }
}
