using Grpc.Core;
using Grpc.Core.Interceptors;
using Serving.Server.Auth;

namespace Serving.Server.Grpc;

/// With --api-key, every gRPC call but grpc.health.v1.Health (probes need no secret, as /health) must
/// carry "authorization: Bearer <key>" metadata; otherwise it ends UNAUTHENTICATED before any work.
internal sealed class ApiKeyInterceptor(BearerKey key) : Interceptor
{
    const string HealthService = "/grpc.health.v1.Health/";

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(request, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(request, responseStream, context);
    }

    /// Server reflection is a duplex stream.
    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(requestStream, responseStream, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(requestStream, context);
    }

    public const string Refusal = "Missing or incorrect API key; send 'authorization: Bearer <key>' metadata.";

    /// Health needs no key; every other method needs "Bearer <key>" in the authorization metadata.
    public static bool IsAuthorized(BearerKey key, string method, string authorization) =>
        method.StartsWith(HealthService, StringComparison.Ordinal) || key.IsAuthorized(authorization);

    void Authorize(ServerCallContext context)
    {
        if (!IsAuthorized(key, context.Method, context.RequestHeaders.GetValue("authorization") ?? ""))
            throw new RpcException(new Status(StatusCode.Unauthenticated, Refusal));
    }
}
