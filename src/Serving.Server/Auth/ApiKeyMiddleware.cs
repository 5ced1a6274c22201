using Grpc.AspNetCore.Server;
using Serving.Server.Errors;

namespace Serving.Server.Auth;

/// Requires "Authorization: Bearer <key>" on every route except /health (so probes need no secret).
/// gRPC methods are left to ApiKeyInterceptor, which answers in gRPC's terms (UNAUTHENTICATED).
internal sealed class ApiKeyMiddleware(RequestDelegate next, BearerKey key)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (IsPublic(context.Request.Path) || IsGrpcMethod(context) || key.IsAuthorized(context.Request.Headers.Authorization.ToString()))
            return next(context);
        return ErrorWriter.WriteAsync(context, new ApiException(StatusCodes.Status401Unauthorized,
            ErrorTypes.Authentication, "Missing or incorrect API key; send 'Authorization: Bearer <key>'.",
            code: "invalid_api_key"));
    }

    static bool IsPublic(PathString path) => path.StartsWithSegments("/health");

    /// Routing ran first (WebApplication puts it at the start), so the endpoint is known here.
    static bool IsGrpcMethod(HttpContext context) => context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is not null;
}
