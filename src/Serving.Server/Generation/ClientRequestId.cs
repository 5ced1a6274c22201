using Microsoft.AspNetCore.Http;

namespace Serving.Server.Generation;

/// The id a client gives its request, as vLLM takes it: the X-Request-Id header, else the body's request_id (gRPC's
/// request_id field). A response's id is the API's prefix and it ("chatcmpl-{id}"); the engine's id adds a random
/// suffix, because the engine requires ids unique among live requests and a client may reuse one.
internal static class ClientRequestId
{
    public const string Header = "X-Request-Id";
    const int MaxLength = 128;

    /// vLLM's --enable-request-id-headers: every response carries X-Request-Id, the request's own (its first value, when
    /// printable ASCII, which a response header must be) or a new one; set as the response starts, so that an error
    /// answer, whose headers are cleared, carries it too.
    public static Task EchoAsync(HttpContext context, RequestDelegate next)
    {
        var given = HeaderValue(context);
        var id = given is not null && given.All(c => c is >= ' ' and <= '~') ? given : Guid.NewGuid().ToString("N");
        context.Response.OnStarting(() =>
        {
            context.Response.Headers[Header] = id;
            return Task.CompletedTask;
        });
        return next(context);
    }

    /// The client's id from the header (its first value) or else the body (bodyParam names the field), checked; null
    /// when it gives none.
    public static string? Of(HttpContext? context, string? bodyId, string bodyParam = "request_id")
    {
        var header = context is null ? null : HeaderValue(context);
        return header is not null ? Checked(header, Header) : Checked(bodyId, bodyParam);
    }

    /// id as a request id may be (at most 128 characters, no control characters), else a 400 naming param; null or
    /// empty: none given.
    public static string? Checked(string? id, string param)
    {
        if (string.IsNullOrEmpty(id)) return null;
        Check.That(id.Length <= MaxLength, param, $"{param} must be at most {MaxLength} characters (got {id.Length}).");
        // It reaches logs and traces: no line breaks or terminal escapes.
        Check.That(!id.Any(char.IsControl), param, $"{param} must not contain control characters.");
        return id;
    }

    /// What a refusal of the client's id names: the header when it came from there, else the body's field.
    public static string ParamOf(HttpContext context, string bodyParam = "request_id") => HeaderValue(context) is not null ? Header : bodyParam;

    static string? HeaderValue(HttpContext context) =>
        context.Request.Headers[Header] is { Count: > 0 } values && !string.IsNullOrEmpty(values[0]) ? values[0] : null;

    /// The response's id and the engine's: prefix-{client id} and that with a random suffix, or one new id for both.
    public static RequestIds Ids(string prefix, string? clientId) =>
        clientId is null ? RequestIds.Same(ServingContext.NewId(prefix)) : WithEngineSuffix($"{prefix}-{clientId}");

    /// A response's id as the client gave it and the engine's that with a random suffix (live engine ids are unique; a
    /// client may reuse its own): vLLM's Responses API takes request_id as the response's id whole.
    public static RequestIds WithEngineSuffix(string response) => new(response, $"{response}-{Guid.NewGuid().ToString("N")[..8]}");
}

/// A request's id in its response and in the engine (where it must be unique among live requests).
internal sealed record RequestIds(string Response, string Engine)
{
    public static RequestIds Same(string id) => new(id, id);
}
