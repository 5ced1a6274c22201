using System.Text.Json;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Serving.Server.Options;

namespace Serving.Server.Cors;

/// Cross-origin requests, as vLLM's server allows them: every origin, method and header by default (a web page on
/// another origin may call the API; the API key still guards it), narrowed by --allowed-origins, --allowed-methods and
/// --allowed-headers (JSON lists), with --allow-credentials. Preflights are answered before the API key is asked for.
internal static class CorsSetup
{
    public static void AddServingCors(this IServiceCollection services, ServerOptions options) =>
        services.AddCors(cors => cors.AddDefaultPolicy(policy => Configure(policy, options)));

    static void Configure(CorsPolicyBuilder policy, ServerOptions options)
    {
        var origins = List(options.AllowedOrigins, "allowed-origins");
        if (!origins.Contains("*")) policy.WithOrigins([.. origins]);
        // with credentials an origin must be named in the answer: any origin is then echoed back
        else if (options.AllowCredentials) policy.SetIsOriginAllowed(_ => true);
        else policy.AllowAnyOrigin();
        var methods = List(options.AllowedMethods, "allowed-methods");
        if (methods.Contains("*")) policy.AllowAnyMethod(); else policy.WithMethods([.. methods]);
        var headers = List(options.AllowedHeaders, "allowed-headers");
        if (headers.Contains("*")) policy.AllowAnyHeader(); else policy.WithHeaders([.. headers]);
        if (options.AllowCredentials) policy.AllowCredentials();
    }

    /// A flag's JSON list of strings; ArgumentException naming the flag otherwise.
    public static IReadOnlyList<string> List(string json, string flag)
    {
        try
        {
            return JsonSerializer.Deserialize<string[]>(json) is { } list && list.All(item => item is { Length: > 0 })
                ? list
                : throw new ArgumentException($"{flag} must be a JSON list of strings, e.g. [\"*\"] (got {json})");
        }
        catch (JsonException)
        {
            throw new ArgumentException($"{flag} must be a JSON list of strings, e.g. [\"*\"] (got {json})");
        }
    }
}
