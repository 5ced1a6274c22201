using System.Text.Json.Serialization;

namespace Serving.Server.Errors;

/// OpenAI's error body: {"error": {"message", "type", "param", "code"}}.
internal sealed record ErrorResponse(ErrorBody Error);

internal sealed record ErrorBody(
    string Message,
    string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code);

/// A failure with its HTTP answer. Thrown by the server's own checks; engine exceptions are mapped by ErrorMapping.
internal sealed class ApiException(int status, string type, string message, string? param = null, string? code = null)
    : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    /// The refusal is the engine's: the prompt does not fit the context (InvalidRequestException.ExceedsContext).
    public bool ExceedsContext { get; init; }

    public ErrorResponse ToResponse() => new(new ErrorBody(Message, Type, Param, Code));

    public static ApiException BadRequest(string message, string? param = null) =>
        new(StatusCodes.Status400BadRequest, ErrorTypes.InvalidRequest, message, param);

    public static ApiException ModelNotFound(string model) =>
        new(StatusCodes.Status404NotFound, ErrorTypes.NotFound,
            $"The model `{model}` does not exist.", "model", "model_not_found");
}

/// The "type" strings of the error body, one per status family.
internal static class ErrorTypes
{
    public const string InvalidRequest = "invalid_request_error";
    public const string Authentication = "authentication_error";
    public const string NotFound = "not_found_error";
    public const string RateLimit = "rate_limit_error";
    public const string Unavailable = "service_unavailable_error";
    public const string Server = "server_error";
}
