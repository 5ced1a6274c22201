using Microsoft.Extensions.Configuration;
using Serving.Server.Options;

namespace Serving.Deploy.Tests.Support;

/// The server's own definitions of its settings, read from its code: the flags ServerCommandLine defines and
/// the "Server" configuration section ServerOptions binds (environment variable Server__Name).
internal static class ServerContract
{
    public const string EnvironmentPrefix = ServerOptions.Section + "__";

    /// Variables that are not server settings but are read by what the server runs on; each is named with
    /// the reader. Anything else a deployment sets is a mistake.
    public static readonly IReadOnlyDictionary<string, string> PlatformVariables = new Dictionary<string, string>
    {
        ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "Telemetry/TelemetrySetup.cs turns OTLP export on when it is set",
        ["OTEL_SERVICE_NAME"] = "the OpenTelemetry SDK's resource (service.name of every span)",
        ["DOTNET_gcServer"] = ".NET runtime: server garbage collector",
    };

    public static IReadOnlySet<string> FlagNames { get; } = ServerCommandLine.Create((_, _) => Task.FromResult(0)).Options
        .SelectMany(o => o.Aliases.Prepend(o.Name)).ToHashSet(StringComparer.Ordinal);

    /// The options a launch gives the server: environment first, flags over it (the server's own order).
    /// Throws for an unknown flag, an unknown Server__ key, or a value of the wrong type.
    public static ServerOptions Bind(ServerLaunch launch)
    {
        var environment = launch.Environment
            .Where(p => p.Key.StartsWith(EnvironmentPrefix, StringComparison.OrdinalIgnoreCase))
            .ToDictionary(p => p.Key.Replace("__", ":"), p => (string?)p.Value);
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(environment)
            .AddInMemoryCollection(ServerCommandLine.ToConfiguration([.. launch.Args]))
            .Build();
        return configuration.GetSection(ServerOptions.Section).Get<ServerOptions>(o => o.ErrorOnUnknownConfiguration = true)
            ?? new ServerOptions();
    }
}
