using Serving.Engine;

namespace Serving.Server.Tests.Support;

/// The real engine behind a test's wrapper: every member passes through to inner, and a wrapper overrides the few
/// it changes (a fault on demand, a gate, a record of what happened).
public abstract class DelegatingEngine(ILlmEngine inner) : ILlmEngine
{
    protected ILlmEngine Inner => inner;

    public virtual EngineState State => inner.State;
    public ModelInfo Info => inner.Info;
    public IPromptProcessor Prompts => inner.Prompts;
    public virtual Task Completion => inner.Completion;

    public virtual Task WaitUntilReadyAsync(CancellationToken cancellationToken) => inner.WaitUntilReadyAsync(cancellationToken);

    public virtual IAsyncEnumerable<TokenEvent> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken) =>
        inner.GenerateAsync(request, cancellationToken);

    public EngineStats GetStats() => inner.GetStats();

    public IReadOnlyList<Serving.Engine.Model.Lora.LoraAdapterSource> LoraAdapters => inner.LoraAdapters;

    public Task LoadLoraAdapterAsync(Serving.Engine.Model.Lora.LoraAdapterSource source, CancellationToken cancellationToken) =>
        inner.LoadLoraAdapterAsync(source, cancellationToken);

    public Task UnloadLoraAdapterAsync(string name, CancellationToken cancellationToken) => inner.UnloadLoraAdapterAsync(name, cancellationToken);

    public Task<bool> ResetPrefixCacheAsync(CancellationToken cancellationToken) => inner.ResetPrefixCacheAsync(cancellationToken);

    public virtual Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken) => inner.DrainAsync(timeout, cancellationToken);

    public virtual ValueTask DisposeAsync() => inner.DisposeAsync();
}
