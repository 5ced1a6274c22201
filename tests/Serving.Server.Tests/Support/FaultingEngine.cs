using System.Runtime.CompilerServices;
using Serving.Engine;

namespace Serving.Server.Tests.Support;

/// The real engine, except that every request fails after its second event: the one thing a healthy
/// engine cannot be made to do on demand (a fault after streaming began).
public sealed class FaultingEngine(ILlmEngine inner) : DelegatingEngine(inner)
{
    public override async IAsyncEnumerable<TokenEvent> GenerateAsync(GenerationRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var seen = 0;
        // Leaving the loop disposes the inner enumerator, which aborts the real request.
        await foreach (var e in Inner.GenerateAsync(request, cancellationToken))
        {
            if (++seen > 2) throw new RequestFailedException("injected fault after two events");
            yield return e;
        }
    }
}
