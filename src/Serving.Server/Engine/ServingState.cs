using Serving.Engine;

namespace Serving.Server.Engine;

/// Whether the server takes work: the engine must be Ready and the server not draining.
/// Draining is one-way: once SIGTERM arrived, every new request is refused with 503.
/// Changed completes at the next change of the status (loaded, load failed, draining, loop ended), so that
/// watchers are told when it changes instead of polling it.
internal sealed class ServingState
{
    readonly ILlmEngine _engine;
    volatile bool _draining;
    TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ServingState(ILlmEngine engine)
    {
        _engine = engine;
        _ = NotifyWhenDoneAsync(engine.WaitUntilReadyAsync(CancellationToken.None));
        _ = NotifyWhenDoneAsync(engine.Completion);
    }

    public bool IsReady => !_draining && _engine.State == EngineState.Ready;

    /// The engine loop is alive (loading, serving or draining); false once it faulted or stopped unasked.
    public bool IsAlive => _engine.State is not EngineState.Faulted && (_engine.State is not EngineState.Stopped || _draining);

    /// Nothing changes any more: the engine stopped after a drain, or faulted.
    public bool IsFinal => _engine.State is EngineState.Faulted || (_draining && _engine.State is EngineState.Stopped);

    public string Status => _draining ? "draining" : _engine.State.ToString().ToLowerInvariant();

    /// Completes at the next status change. Take it before reading the status, so that no change is missed.
    public Task Changed => Volatile.Read(ref _changed).Task;

    public void BeginDraining()
    {
        _draining = true;
        NotifyChanged();
    }

    /// Throws EngineUnavailableException (503) unless the server takes work now.
    public void EnsureReady()
    {
        if (!IsReady) throw new EngineUnavailableException($"The server is not ready ({Status}).");
    }

    async Task NotifyWhenDoneAsync(Task engineEvent)
    {
        await engineEvent.ContinueWith(_ => { }, TaskScheduler.Default);
        NotifyChanged();
    }

    void NotifyChanged() =>
        Interlocked.Exchange(ref _changed, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}
