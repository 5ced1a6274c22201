using System.Reflection;

namespace Serving.Server.Health;

/// GET /version, as vLLM serves it: {"version": "..."}, open without an API key. The version is the server
/// assembly's informational version (the build's version and, when built from git, its commit).
internal static class VersionEndpoint
{
    public sealed record VersionResponse(string Version);

    static readonly string Version = typeof(VersionEndpoint).Assembly
        .GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    public static void MapVersion(this IEndpointRouteBuilder app) =>
        app.MapGet("/version", () => TypedResults.Json(new VersionResponse(Version), OpenAI.OpenAIJsonContext.Default.VersionResponse));
}
