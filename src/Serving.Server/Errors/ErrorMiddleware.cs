namespace Serving.Server.Errors;

/// Turns any exception escaping an endpoint into the OpenAI error shape. Once a response has started
/// (a stream), the streaming code reports its own failures; a client that went away gets nothing.
internal sealed class ErrorMiddleware(RequestDelegate next, ILogger<ErrorMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (Exception exception) when (context.RequestAborted.IsCancellationRequested)
        {
            Log.ClientWentAway(logger, context.TraceIdentifier, exception.GetType().Name);
        }
        catch (Exception exception) when (!context.Response.HasStarted)
        {
            var error = ErrorMapping.ToApiException(exception);
            // 503 (loading, draining) is a state the client is told about, not a fault of the server.
            if (error.Status == StatusCodes.Status500InternalServerError) Log.RequestFailed(logger, context.TraceIdentifier, exception);
            else Log.RequestRejected(logger, context.TraceIdentifier, error.Status, error.Code ?? error.Type);
            context.Response.Clear();
            await ErrorWriter.WriteAsync(context, error);
        }
    }

    /// Bodiless 4xx from routing (unknown route 404, wrong method 405) get the error shape too.
    public static Task WriteStatusCodeBodyAsync(HttpContext context)
    {
        var status = context.Response.StatusCode;
        var error = status == StatusCodes.Status404NotFound
            ? new ApiException(status, ErrorTypes.NotFound, $"No route for {context.Request.Method} {context.Request.Path}.", code: "not_found")
            : new ApiException(status, status >= 500 ? ErrorTypes.Server : ErrorTypes.InvalidRequest,
                $"{context.Request.Method} {context.Request.Path} failed with status {status}.");
        return ErrorWriter.WriteAsync(context, error);
    }
}
