using Serving.Engine;

namespace Serving.Server.Engine;

/// Whether the server takes work: the engine must be Ready and the server not draining.
/// Draining is one-way: once SIGTERM arrived, every new request is refused with 503.
internal sealed class ServingState(ILlmEngine engine)
{
    volatile bool _draining;

    public bool IsDraining => _draining;

    public bool IsReady => !_draining && engine.State == EngineState.Ready;

    /// The engine loop is alive (loading, serving or draining); false once it faulted or stopped unasked.
    public bool IsAlive => engine.State is not EngineState.Faulted && (engine.State is not EngineState.Stopped || _draining);

    public string Status => _draining ? "draining" : engine.State.ToString().ToLowerInvariant();

    public void BeginDraining() => _draining = true;

    /// Throws EngineUnavailableException (503) unless the server takes work now.
    public void EnsureReady()
    {
        if (!IsReady) throw new EngineUnavailableException($"The server is not ready ({Status}).");
    }
}
