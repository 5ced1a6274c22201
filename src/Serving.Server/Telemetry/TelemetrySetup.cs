using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Serving.Server.Telemetry;

/// OpenTelemetry wiring: the server's and engine's meters plus ASP.NET Core's, scraped on /metrics;
/// spans per request; everything also exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
internal static class TelemetrySetup
{
    public static IServiceCollection AddServerTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<ServerMetrics>();
        services.AddSingleton<EngineMetrics>();
        var telemetry = services.AddOpenTelemetry()
            .WithMetrics(metrics => metrics
                .AddMeter(ServerMetrics.MeterName, EngineMetrics.MeterName)
                .AddAspNetCoreInstrumentation()
                // Each scrape reads fresh engine stats (the default caches a scrape for 300 ms).
                .AddPrometheusExporter(prometheus => prometheus.ScrapeResponseCacheDurationMilliseconds = 0))
            .WithTracing(tracing => tracing
                .AddSource(RequestObserver.Source.Name)
                .AddAspNetCoreInstrumentation());
        if (!string.IsNullOrEmpty(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"])) telemetry.UseOtlpExporter();
        return services;
    }
}
