using System.Diagnostics;
using Serving.Engine;
using Serving.Server.Connections;
using Serving.Server.Options;

namespace Serving.Server.Engine;

/// Ties the engine to the host's life: logs when loading ends, stops the process when loading failed (as vLLM
/// exits, so that a supervisor sees the failure; ServerApp.RunAsync then returns 1), and on shutdown (SIGTERM)
/// stops admitting, lets running requests finish up to --shutdown-timeout and aborts the rest before Kestrel
/// stops. StoppingAsync runs before any hosted service (Kestrel included) stops, so streams end cleanly.
internal sealed class EngineHost(ILlmEngine engine, ServingState state, ServerOptions options, IHostApplicationLifetime lifetime,
    ConnectionLimit connections, ILogger<EngineHost> logger) : IHostedLifecycleService, IDisposable
{
    readonly CancellationTokenSource _stopping = new();

    public Task StartingAsync(CancellationToken cancellationToken)
    {
        Log.EngineLoading(logger, options.ResolvedModel, options.ResolvedServedModelName, options.Device);
        Log.ConnectionLimits(logger, connections.Max, DescriptorLimit.Read()?.ToString() ?? "unknown", options.TimeoutKeepAlive);
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = ReportReadinessAsync();
        return Task.CompletedTask;
    }

    async Task ReportReadinessAsync()
    {
        try
        {
            await engine.WaitUntilReadyAsync(_stopping.Token);
            var info = engine.Info;
            Log.EngineReady(logger, info.Architecture, info.NumLayers, info.MaxModelLen, info.NumKVBlocks, info.BlockSize);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested) { }
        catch (Exception exception)
        {
            // The engine logged the details; this line says what happens next.
            Log.EngineFailed(logger, exception.Message);
            // Stopping while the host still starts would fail its start-up; stop once it has started.
            lifetime.ApplicationStarted.Register(lifetime.StopApplication);
        }
    }

    /// True once loading the model failed (the engine never became ready).
    public static bool LoadFailed(ILlmEngine engine) => engine.WaitUntilReadyAsync(CancellationToken.None).IsFaulted;

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        state.BeginDraining();
        await _stopping.CancelAsync();
        Log.Draining(logger, options.ShutdownTimeout);
        var started = Stopwatch.GetTimestamp();
        try
        {
            await engine.DrainAsync(TimeSpan.FromSeconds(options.ShutdownTimeout), cancellationToken);
            Log.Drained(logger, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (Exception exception)
        {
            Log.DrainFailed(logger, exception);
        }
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _stopping.Dispose();
}
