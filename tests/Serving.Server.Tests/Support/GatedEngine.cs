using Serving.Engine;

namespace Serving.Server.Tests.Support;

/// The real engine, reported as still loading until Open(), and whose drain starts only once LetDrain() is
/// called: the tiny fixture loads and generates too fast to watch the server's health go from loading to serving
/// and to draining otherwise (a drain over a running request once ended before the test could look at it).
public sealed class GatedEngine(ILlmEngine inner) : DelegatingEngine(inner)
{
    readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly TaskCompletionSource _drainGate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Open() => _gate.TrySetResult();

    public void LetDrain() => _drainGate.TrySetResult();

    public override EngineState State => _gate.Task.IsCompleted ? Inner.State : EngineState.Loading;

    public override async Task WaitUntilReadyAsync(CancellationToken cancellationToken)
    {
        await _gate.Task.WaitAsync(cancellationToken);
        await Inner.WaitUntilReadyAsync(cancellationToken);
    }

    public override async Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        await _drainGate.Task.WaitAsync(cancellationToken);
        await Inner.DrainAsync(timeout, cancellationToken);
    }

    public override ValueTask DisposeAsync()
    {
        LetDrain();
        return Inner.DisposeAsync();
    }
}
