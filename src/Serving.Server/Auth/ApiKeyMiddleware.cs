using Grpc.AspNetCore.Server;
using Serving.Server.Errors;
using Serving.Server.Options;

namespace Serving.Server.Auth;

/// Requires "Authorization: Bearer <key>" on every route except the operators' open ones: /health and /ping (probes),
/// /load (load balancers), /version, and /metrics unless --enable-metrics-auth (vLLM leaves it open; Prometheus scrapes need no secret).
/// gRPC methods are left to ApiKeyInterceptor, which answers in gRPC's terms (UNAUTHENTICATED).
internal sealed class ApiKeyMiddleware(RequestDelegate next, BearerKey key, ServerOptions options)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (IsPublic(context.Request.Path) || IsGrpcMethod(context) || key.IsAuthorized(context.Request.Headers.Authorization.ToString()))
            return next(context);
        return ErrorWriter.WriteAsync(context, new ApiException(StatusCodes.Status401Unauthorized,
            ErrorTypes.Authentication, "Missing or incorrect API key; send 'Authorization: Bearer <key>'.",
            code: "invalid_api_key"));
    }

    bool IsPublic(PathString path) =>
        path.StartsWithSegments("/health") || path.StartsWithSegments("/ping") || path.StartsWithSegments("/load") || path.StartsWithSegments("/version")
        || (!options.EnableMetricsAuth && path.StartsWithSegments("/metrics"));

    /// Routing ran first (WebApplication puts it at the start), so the endpoint is known here.
    static bool IsGrpcMethod(HttpContext context) => context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is not null;
}
