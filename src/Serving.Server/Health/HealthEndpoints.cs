using Serving.Server.Engine;

namespace Serving.Server.Health;

/// Probes (GET or HEAD), open without an API key. /health is liveness: 200 while the engine loop lives (loading
/// included), 503 once it died. /health/ready is readiness: 200 only when requests are taken, 503 while
/// loading, draining or dead; /ping (also POST) is SageMaker's name for readiness. The body names the state.
internal static class HealthEndpoints
{
    public static void MapHealth(this IEndpointRouteBuilder app)
    {
        // HEAD too: some load balancers and uptime checks probe with it.
        string[] methods = [HttpMethods.Get, HttpMethods.Head];
        app.MapMethods("/health", methods, (ServingState state) => Probe(state.IsAlive, state.Status));
        app.MapMethods("/health/ready", methods, (ServingState state) => Probe(state.IsReady, state.Status));
        // SageMaker's probe (vLLM serves it): the container takes traffic once it answers 200, so it is readiness
        app.MapMethods("/ping", [.. methods, HttpMethods.Post], (ServingState state) => Probe(state.IsReady, state.Status));
    }

    static IResult Probe(bool ok, string status) =>
        Results.Text(status, "text/plain", statusCode: ok ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
}
