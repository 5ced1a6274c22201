using Microsoft.AspNetCore.Http;

namespace Serving.Server.Generation;

/// The id a client gives its request, as vLLM takes it: the X-Request-Id header, else the body's request_id (gRPC's
/// request_id field). A response's id is the API's prefix and it ("chatcmpl-{id}"); the engine's id adds a random
/// suffix, because the engine requires ids unique among live requests and a client may reuse one.
internal static class ClientRequestId
{
    public const string Header = "X-Request-Id";
    const int MaxLength = 128;

    /// vLLM's --enable-request-id-headers: every response carries X-Request-Id, the request's own or a new one.
    public static Task EchoAsync(HttpContext context, RequestDelegate next)
    {
        var id = context.Request.Headers[Header] is { Count: > 0 } given ? given.ToString() : Guid.NewGuid().ToString("N");
        context.Response.Headers[Header] = id;
        return next(context);
    }

    /// The client's id from the header or the body (param names the field), checked; null when it gives none.
    public static string? Of(HttpContext? context, string? bodyId, string param = "request_id")
    {
        var id = context?.Request.Headers[Header] is { Count: > 0 } header ? header.ToString() : bodyId;
        if (string.IsNullOrEmpty(id)) return null;
        Check.That(id.Length <= MaxLength, param, $"{param} must be at most {MaxLength} characters (got {id.Length}).");
        // It reaches logs and traces: no line breaks or terminal escapes.
        Check.That(!id.Any(char.IsControl), param, $"{param} must not contain control characters.");
        return id;
    }

    /// The response's id and the engine's: prefix-{client id} and that with a random suffix, or one new id for both.
    public static RequestIds Ids(string prefix, string? clientId)
    {
        if (clientId is null) return RequestIds.Same(ServingContext.NewId(prefix));
        var response = $"{prefix}-{clientId}";
        return new RequestIds(response, $"{response}-{Guid.NewGuid().ToString("N")[..8]}");
    }
}

/// A request's id in its response and in the engine (where it must be unique among live requests).
internal sealed record RequestIds(string Response, string Engine)
{
    public static RequestIds Same(string id) => new(id, id);
}
