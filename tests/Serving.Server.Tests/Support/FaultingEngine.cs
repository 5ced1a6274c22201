using System.Runtime.CompilerServices;
using Serving.Engine;

namespace Serving.Server.Tests.Support;

/// The real engine, except that every request fails after its second event: the one thing a healthy
/// engine cannot be made to do on demand (a fault after streaming began).
public sealed class FaultingEngine(ILlmEngine inner) : ILlmEngine
{
    public EngineState State => inner.State;
    public ModelInfo Info => inner.Info;
    public IPromptProcessor Prompts => inner.Prompts;

    public Task WaitUntilReadyAsync(CancellationToken cancellationToken) => inner.WaitUntilReadyAsync(cancellationToken);

    public async IAsyncEnumerable<TokenEvent> GenerateAsync(GenerationRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var seen = 0;
        // Leaving the loop disposes the inner enumerator, which aborts the real request.
        await foreach (var e in inner.GenerateAsync(request, cancellationToken))
        {
            if (++seen > 2) throw new RequestFailedException("injected fault after two events");
            yield return e;
        }
    }

    public Task Completion => inner.Completion;

    public EngineStats GetStats() => inner.GetStats();

    public IReadOnlyList<Serving.Engine.Model.Lora.LoraAdapterSource> LoraAdapters => inner.LoraAdapters;

    public Task LoadLoraAdapterAsync(Serving.Engine.Model.Lora.LoraAdapterSource source, CancellationToken cancellationToken) =>
        inner.LoadLoraAdapterAsync(source, cancellationToken);

    public Task UnloadLoraAdapterAsync(string name, CancellationToken cancellationToken) => inner.UnloadLoraAdapterAsync(name, cancellationToken);

    public Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken) => inner.DrainAsync(timeout, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
