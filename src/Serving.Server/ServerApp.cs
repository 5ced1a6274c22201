using Microsoft.AspNetCore.Connections;
using Serving.Server.Generation;
using System.Net;
using Serving.Engine;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Serving.Server.Auth;
using Serving.Server.Connections;
using Serving.Server.Cors;
using Serving.Server.Engine;
using Serving.Server.Errors;
using Serving.Server.Grpc;
using Serving.Server.Health;
using Serving.Server.Memory;
using Serving.Server.OpenAI;
using Serving.Server.OpenAI.Chat;
using Serving.Server.OpenAI.Completions;
using Serving.Server.OpenAI.Pooling;
using Serving.Server.OpenAI.Responses;
using Serving.Server.Options;
using Serving.Server.Playground;
using Serving.Server.Telemetry;
using Serving.Server.Tokenize;

namespace Serving.Server;

/// Builds the server: options from appsettings.json, environment and flags; the engine; the routes.
/// Program.cs runs it; tests build it with "--port 0" and talk to it over loopback.
public static class ServerApp
{
    /// args are the command-line flags (see --help); throws ArgumentException for bad flags or options.
    public static WebApplication Build(string[] args, EngineFactory engineFactory) =>
        Build(ServerCommandLine.ToConfiguration(args), engineFactory);

    public static WebApplication Build(IReadOnlyDictionary<string, string?> flags, EngineFactory engineFactory)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddInMemoryCollection(flags);
        var options = builder.Configuration.GetSection(ServerOptions.Section).Get<ServerOptions>() ?? new ServerOptions();
        if (options.Validate() is { Count: > 0 } errors) throw new ArgumentException(string.Join(Environment.NewLine, errors));
        AddServices(builder.Services, options, engineFactory);
        builder.Services.AddServerTelemetry(builder.Configuration);
        UnixFileMode? socketMode = null;   // --uds: set on the socket once it is bound
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            // Also how long a new connection may stay silent before its first request (Kestrel's default is 130 s).
            kestrel.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(options.TimeoutKeepAlive);
            var limit = kestrel.ApplicationServices.GetRequiredService<ConnectionLimit>();
            var certificate = TlsCertificate.Load(options.SslCertfile, options.SslKeyfile);
            var clients = ClientCertificates.Load(options.SslCertReqs, options.SslCaCerts, https: certificate is not null);
            void Listen(ListenOptions listen)
            {
                listen.Use(limit.Wrap);
                if (certificate is not null)
                    listen.UseHttps(https =>
                    {
                        https.ServerCertificate = certificate;
                        clients?.Configure(https);
                    });
            }
            if (options.Uds is { } socket)
            {
                socketMode = Connections.UnixSocketPath.ModeFor(socket);
                kestrel.ListenUnixSocket(Connections.UnixSocketPath.Claim(socket), Listen);
            }
            else if (options.Host == "localhost") kestrel.ListenLocalhost(options.Port, Listen);
            else kestrel.Listen(IPAddress.Parse(options.Host), options.Port, Listen);
            kestrel.ListenGrpc(options, limit);
        });
        var app = builder.Build();
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            if (options.Uds is { } socket && socketMode is { } mode && !OperatingSystem.IsWindows()) File.SetUnixFileMode(socket, mode);
        });
        if (options.FlagsWithoutEffect is { } withoutEffect)
            Log.FlagsWithoutEffect(app.Logger, withoutEffect.Replace("\n", "; ", StringComparison.Ordinal));
        MapRoutes(app, options);
        return app;
    }

    /// Runs until SIGTERM/Ctrl+C; returns the process exit code: 0 after a shutdown, 1 when the model failed to
    /// load (the server stops at once), 2 for bad flags or options.
    public static async Task<int> RunAsync(IReadOnlyDictionary<string, string?> flags, EngineFactory engineFactory)
    {
        WebApplication app;
        try
        {
            app = Build(flags, engineFactory);
        }
        catch (ArgumentException invalid)
        {
            await Console.Error.WriteLineAsync(invalid.Message);
            return 2;
        }
        var engine = app.Services.GetRequiredService<ILlmEngine>();
        await using (app) await app.RunAsync();
        return EngineHost.LoadFailed(engine) ? 1 : 0;
    }

    static void AddServices(IServiceCollection services, ServerOptions options, EngineFactory engineFactory)
    {
        services.AddSingleton(options);
        services.AddServingCors(options);
        services.AddSingleton<ConnectionLimit>();
        services.AddSingleton<AcceptGate>();
        services.AddSingleton<IConnectionListenerFactory>(sp => sp.GetRequiredService<AcceptGate>());
        services.AddSingleton(sp => engineFactory(options.ToEngineOptions(), sp.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton<ServingState>();
        services.AddSingleton<Health.ServerLoad>();
        services.AddSingleton<ServingContext>();
        services.AddSingleton<ResponseStore>();
        services.AddSingleton<BackgroundResponses>();
        services.AddHostedService<EngineHost>();
        services.AddHostedService<IdleMemoryTrimmer>();
        services.AddHostedService<StatsLogger>();
        if (options.ApiKeys is { Count: > 0 } apiKeys) services.AddSingleton(new BearerKey(apiKeys));
        if (options.GrpcPort is not null) services.AddServingGrpc(options);
        // Drain first (--shutdown-timeout), then leave Kestrel time to close the finished streams.
        services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(options.ShutdownTimeout + 10));
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, OpenAIJsonContext.Default));
    }

    static void MapRoutes(WebApplication app, ServerOptions options)
    {
        if (options.PathBase is { } pathBase)
        {
            // before routing (made explicit here, so that it matches the path without the prefix)
            app.UsePathBase(pathBase);
            app.UseRouting();
        }
        app.UseCors();   // first: preflights need no API key, and error answers carry the headers too
        if (options.EnableRequestIdHeaders) app.Use(ClientRequestId.EchoAsync);
        if (options.EnableServerLoadTracking) app.Use(app.Services.GetRequiredService<Health.ServerLoad>().TrackAsync);
        app.UseMiddleware<ErrorMiddleware>();
        app.UseStatusCodePages(context => ErrorMiddleware.WriteStatusCodeBodyAsync(context.HttpContext));
        if (!options.DisablePlayground) app.UsePlayground(); // before the key check: the page itself is public
        if (options.ApiKeys.Count > 0) app.UseMiddleware<ApiKeyMiddleware>();
        app.Services.GetRequiredService<EngineMetrics>(); // registers the engine's observable instruments
        app.MapHealth();
        app.MapVersion();
        Health.ServerLoad.MapLoad(app);
        var v1 = app.MapGroup("/v1");
        v1.MapPost("/completions", CompletionsEndpoint.HandleAsync);
        v1.MapPost("/chat/completions", ChatEndpoint.HandleAsync);
        v1.MapPost("/embeddings", OpenAI.Pooling.EmbeddingsEndpoint.HandleAsync);
        v1.MapResponses();
        if (options.AllowRuntimeLoraUpdating) v1.MapLoraAdapterUpdates();
        v1.MapGet("/models", ModelsEndpoint.List);
        // Ids may hold slashes: Hugging Face names (org/name) and the default served name (the --model path).
        v1.MapGet("/models/{**id}", ModelsEndpoint.Get);
        v1.MapGet("/engine/stats", EngineStatsEndpoint.Get);
        app.MapTokenize();
        app.MapScores();
        app.MapClassify();
        app.MapPooling();
        app.MapInvocations();
        app.MapPrefixCacheReset();
        app.MapPrometheusScrapingEndpoint("/metrics");
        if (options.GrpcPort is not null) app.MapServingGrpc(options);
    }
}
