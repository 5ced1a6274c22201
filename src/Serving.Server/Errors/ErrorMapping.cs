using System.Text.Json;
using Serving.Engine;

namespace Serving.Server.Errors;

/// Maps an exception to its HTTP answer. A client's mistake is always a 4xx: OpenAI SDKs retry 5xx.
internal static class ErrorMapping
{
    /// Seconds a client should wait after 429 or 503 before retrying.
    public const int RetryAfterSeconds = 1;

    public static ApiException ToApiException(Exception exception) => exception switch
    {
        ApiException api => api,
        InvalidRequestException invalid => ApiException.BadRequest(invalid.Message, invalid.Param),
        QueueFullException full => new ApiException(StatusCodes.Status429TooManyRequests, ErrorTypes.RateLimit,
            full.Message, code: "queue_full"),
        EngineUnavailableException unavailable => new ApiException(StatusCodes.Status503ServiceUnavailable,
            ErrorTypes.Unavailable, unavailable.Message, code: "engine_unavailable"),
        JsonException json => FromJson(json),
        BadHttpRequestException bad => FromBadHttpRequest(bad),
        RequestFailedException failed => new ApiException(StatusCodes.Status500InternalServerError,
            ErrorTypes.Server, failed.Message, code: "request_failed"),
        _ => new ApiException(StatusCodes.Status500InternalServerError, ErrorTypes.Server,
            "The server failed to process the request.", code: "internal_error"),
    };

    /// Malformed JSON, a value of the wrong type, invalid UTF-8: the path of the offending value becomes param.
    static ApiException FromJson(JsonException json)
    {
        var param = json.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal)
            ? path[2..] : null;
        // The parser's own message names .NET types for conversion errors; say it in the API's terms instead.
        var message = json.Message.StartsWith("The JSON value could not be converted", StringComparison.Ordinal)
            ? param is null ? "The request body must be a JSON object." : $"Invalid type or value for '{param}'."
            : $"Invalid JSON body: {json.Message.Split(" Path:", 2)[0]}";
        return ApiException.BadRequest(message, param);
    }

    /// Kestrel's own refusals (body over the limit = 413, unreadable framing = 400).
    static ApiException FromBadHttpRequest(BadHttpRequestException bad) =>
        bad.StatusCode == StatusCodes.Status413PayloadTooLarge
            ? new ApiException(bad.StatusCode, ErrorTypes.InvalidRequest, "The request body is too large.",
                code: "request_too_large")
            : new ApiException(bad.StatusCode is >= 400 and < 500 ? bad.StatusCode : 400,
                ErrorTypes.InvalidRequest, bad.Message);
}
