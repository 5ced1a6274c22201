using Serving.Engine;

namespace Serving.Server.Tests.Support;

/// The real engine, reported as still loading until Open(): the tiny fixture loads too fast to watch the
/// server's health go from loading to serving otherwise.
public sealed class GatedEngine(ILlmEngine inner) : ILlmEngine
{
    readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Open() => _gate.TrySetResult();

    public EngineState State => _gate.Task.IsCompleted ? inner.State : EngineState.Loading;
    public ModelInfo Info => inner.Info;
    public IPromptProcessor Prompts => inner.Prompts;

    public async Task WaitUntilReadyAsync(CancellationToken cancellationToken)
    {
        await _gate.Task.WaitAsync(cancellationToken);
        await inner.WaitUntilReadyAsync(cancellationToken);
    }

    public IAsyncEnumerable<TokenEvent> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken) =>
        inner.GenerateAsync(request, cancellationToken);

    public Task Completion => inner.Completion;

    public EngineStats GetStats() => inner.GetStats();

    public Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken) => inner.DrainAsync(timeout, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
