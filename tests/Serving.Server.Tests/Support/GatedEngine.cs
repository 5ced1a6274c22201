using Serving.Engine;

namespace Serving.Server.Tests.Support;

/// The real engine, reported as still loading until Open(), and whose drain starts only once LetDrain() is
/// called: the tiny fixture loads and generates too fast to watch the server's health go from loading to serving
/// and to draining otherwise (a drain over a running request once ended before the test could look at it).
public sealed class GatedEngine(ILlmEngine inner) : ILlmEngine
{
    readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly TaskCompletionSource _drainGate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Open() => _gate.TrySetResult();

    public void LetDrain() => _drainGate.TrySetResult();

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

    public IReadOnlyList<Serving.Engine.Model.Lora.LoraAdapterSource> LoraAdapters => inner.LoraAdapters;

    public Task LoadLoraAdapterAsync(Serving.Engine.Model.Lora.LoraAdapterSource source, CancellationToken cancellationToken) =>
        inner.LoadLoraAdapterAsync(source, cancellationToken);

    public Task UnloadLoraAdapterAsync(string name, CancellationToken cancellationToken) => inner.UnloadLoraAdapterAsync(name, cancellationToken);

    public async Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        await _drainGate.Task.WaitAsync(cancellationToken);
        await inner.DrainAsync(timeout, cancellationToken);
    }

    public ValueTask DisposeAsync()
    {
        LetDrain();
        return inner.DisposeAsync();
    }
}
