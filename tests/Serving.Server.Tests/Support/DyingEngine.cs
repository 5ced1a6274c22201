using Serving.Engine;

namespace Serving.Server.Tests.Support;

/// The real engine, whose loop can be made to die on demand (Kill): its State turns Faulted and its
/// Completion completes, as when the loop hits a bug outside any request, which a healthy engine never does.
public sealed class DyingEngine(ILlmEngine inner) : DelegatingEngine(inner)
{
    readonly TaskCompletionSource _killed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Kill() => _killed.TrySetResult();

    public override EngineState State => _killed.Task.IsCompleted ? EngineState.Faulted : Inner.State;
    public override Task Completion => Task.WhenAny(Inner.Completion, _killed.Task);
}
