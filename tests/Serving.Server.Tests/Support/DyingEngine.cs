using Serving.Engine;

namespace Serving.Server.Tests.Support;

/// The real engine, whose loop can be made to die on demand (Kill): its State turns Faulted and its
/// Completion completes, as when the loop hits a bug outside any request, which a healthy engine never does.
public sealed class DyingEngine(ILlmEngine inner) : ILlmEngine
{
    readonly TaskCompletionSource _killed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Kill() => _killed.TrySetResult();

    public EngineState State => _killed.Task.IsCompleted ? EngineState.Faulted : inner.State;
    public ModelInfo Info => inner.Info;
    public IPromptProcessor Prompts => inner.Prompts;
    public Task Completion => Task.WhenAny(inner.Completion, _killed.Task);

    public Task WaitUntilReadyAsync(CancellationToken cancellationToken) => inner.WaitUntilReadyAsync(cancellationToken);

    public IAsyncEnumerable<TokenEvent> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken) =>
        inner.GenerateAsync(request, cancellationToken);

    public EngineStats GetStats() => inner.GetStats();

    public IReadOnlyList<Serving.Engine.Model.Lora.LoraAdapterSource> LoraAdapters => inner.LoraAdapters;

    public Task LoadLoraAdapterAsync(Serving.Engine.Model.Lora.LoraAdapterSource source, CancellationToken cancellationToken) =>
        inner.LoadLoraAdapterAsync(source, cancellationToken);

    public Task UnloadLoraAdapterAsync(string name, CancellationToken cancellationToken) => inner.UnloadLoraAdapterAsync(name, cancellationToken);

    public Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken) => inner.DrainAsync(timeout, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
