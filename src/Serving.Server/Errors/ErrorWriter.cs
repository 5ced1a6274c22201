using Serving.Server.OpenAI;

namespace Serving.Server.Errors;

/// Writes an error answer: status, Retry-After where a retry makes sense, and the OpenAI error body.
internal static class ErrorWriter
{
    public static Task WriteAsync(HttpContext context, ApiException error)
    {
        var response = context.Response;
        response.StatusCode = error.Status;
        if (error.Status is StatusCodes.Status429TooManyRequests or StatusCodes.Status503ServiceUnavailable)
            response.Headers.RetryAfter = ErrorMapping.RetryAfterSeconds.ToString();
        if (error.Status == StatusCodes.Status401Unauthorized)
            response.Headers.WWWAuthenticate = "Bearer";
        return response.WriteAsJsonAsync(error.ToResponse(), OpenAIJsonContext.Default.ErrorResponse,
            cancellationToken: CancellationToken.None);
    }
}
