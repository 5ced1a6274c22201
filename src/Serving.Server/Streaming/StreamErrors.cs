using Serving.Server.Errors;
using Serving.Server.Generation;
using Serving.Server.OpenAI;

namespace Serving.Server.Streaming;

/// A failure after the stream began cannot change the status code: it becomes an error event
/// (OpenAI's error shape) before the closing [DONE], never a silent close.
internal static class StreamErrors
{
    public static Task WriteAsync(SseWriter sse, Exception exception, string requestId, ServingContext serving,
        CancellationToken cancellationToken)
    {
        serving.LogStreamFailure(requestId, exception);
        var error = ErrorMapping.ToApiException(exception).ToResponse();
        return sse.WriteAsync(error, OpenAIJsonContext.Default.ErrorResponse, cancellationToken);
    }
}
