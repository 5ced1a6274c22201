using Grpc.Core;
using Grpc.Core.Interceptors;
using Serving.Server.Errors;

namespace Serving.Server.Grpc;

/// Gives every failure of a gRPC call the status code its HTTP twin maps to (ErrorMapping), so that both
/// APIs refuse the same requests for the same reasons: 400 INVALID_ARGUMENT, 401 UNAUTHENTICATED,
/// 404 NOT_FOUND, 413/429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, else INTERNAL. The message names the
/// field; trailers "error-param" and "error-code" carry the HTTP error body's param and code.
internal sealed class ErrorInterceptor(ILogger<ErrorInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request,
        ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception exception) when (exception is not RpcException)
        {
            throw ToRpcException(exception, context);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception exception) when (exception is not RpcException)
        {
            throw ToRpcException(exception, context);
        }
    }

    RpcException ToRpcException(Exception exception, ServerCallContext context)
    {
        // The call's token fired: the client left or the deadline passed; the status only reaches logs.
        if (exception is OperationCanceledException && context.CancellationToken.IsCancellationRequested)
            return new RpcException(context.Deadline <= DateTime.UtcNow
                ? new Status(StatusCode.DeadlineExceeded, "The deadline passed; the request was aborted.")
                : new Status(StatusCode.Cancelled, "The call was cancelled; the request was aborted."));
        var error = ErrorMapping.ToApiException(exception);
        var code = ToStatusCode(error.Status);
        if (code == StatusCode.Internal) Log.GrpcFailed(logger, context.Method, exception);
        else Log.GrpcRejected(logger, context.Method, code, error.Code ?? error.Type);
        var trailers = new Metadata();
        if (error.Param is { } param) trailers.Add("error-param", param);
        if (error.Code is { } errorCode) trailers.Add("error-code", errorCode);
        return new RpcException(new Status(code, error.Message), trailers);
    }

    internal static StatusCode ToStatusCode(int httpStatus) => httpStatus switch
    {
        StatusCodes.Status400BadRequest => StatusCode.InvalidArgument,
        StatusCodes.Status401Unauthorized => StatusCode.Unauthenticated,
        StatusCodes.Status404NotFound => StatusCode.NotFound,
        StatusCodes.Status413PayloadTooLarge or StatusCodes.Status429TooManyRequests => StatusCode.ResourceExhausted,
        StatusCodes.Status503ServiceUnavailable => StatusCode.Unavailable,
        _ => StatusCode.Internal,
    };
}
