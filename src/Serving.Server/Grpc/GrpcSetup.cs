using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Serving.Server.Connections;
using Serving.Server.Options;

namespace Serving.Server.Grpc;

/// The gRPC API's wiring, used by ServerApp when --grpc-port is set: services and interceptors, the HTTP/2
/// listener, the guard against unparseable messages, and the routes (serving.v1.Generation,
/// grpc.health.v1.Health, reflection behind its flag).
internal static class GrpcSetup
{
    public static IServiceCollection AddServingGrpc(this IServiceCollection services, ServerOptions options)
    {
        services.AddSingleton<GrpcEndpoint>();
        services.AddGrpc(grpc =>
        {
            // One bound for both APIs' requests (--max-request-body-bytes); larger messages are RESOURCE_EXHAUSTED.
            grpc.MaxReceiveMessageSize = (int)Math.Min(options.MaxRequestBodyBytes, int.MaxValue);
            // Unknown services fall through to the HTTP routes' 404/405 (a client sees UNIMPLEMENTED): gRPC's
            // catch-all route would otherwise turn a wrong HTTP method on an OpenAI route into 404.
            grpc.IgnoreUnknownServices = true;
            grpc.Interceptors.Add<ErrorInterceptor>();
            if (options.ApiKeys.Count > 0) grpc.Interceptors.Add<ApiKeyInterceptor>();
        });
        if (options.EnableGrpcReflection) services.AddGrpcReflection();
        return services;
    }

    public static void ListenGrpc(this KestrelServerOptions kestrel, ServerOptions options, ConnectionLimit limit)
    {
        if (options.GrpcPort is { } port)
            kestrel.ApplicationServices.GetRequiredService<GrpcEndpoint>().Listen(kestrel, options.Host, port, limit);
    }

    public static void MapServingGrpc(this WebApplication app, ServerOptions options)
    {
        app.Use(LeaveTheBodyLimitToGrpc);
        app.UseMiddleware<MalformedMessageGuard>((int)Math.Min(options.MaxRequestBodyBytes, int.MaxValue));
        app.MapGrpcService<GenerationService>();
        app.MapGrpcService<HealthService>();
        if (options.EnableGrpcReflection) app.MapGrpcReflectionService();
    }

    /// gRPC checks a message's declared length against MaxReceiveMessageSize (the same bound) before reading
    /// it, and answers RESOURCE_EXHAUSTED. Kestrel's body limit would race that check: when the whole message
    /// has already arrived, Kestrel's count trips first and the client sees UNKNOWN instead.
    static Task LeaveTheBodyLimitToGrpc(HttpContext context, RequestDelegate next)
    {
        if (context.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true
            && context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            limit.MaxRequestBodySize = null;
        return next(context);
    }
}
