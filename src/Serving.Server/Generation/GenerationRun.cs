using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Serving.Engine;
using Serving.Server.Telemetry;

namespace Serving.Server.Generation;

/// An event of one of the run's prompts.
internal readonly record struct PromptEvent(int PromptIndex, TokenEvent Event);

/// The engine requests of one HTTP request (one per prompt), started together and read as one stream.
/// StartAsync returns once every prompt produced its first event, so refusals (invalid, queue full,
/// unavailable) surface before any byte of the response is written and become a proper status code.
/// Disposing cancels whatever still runs, which aborts those requests in the engine.
internal sealed class GenerationRun : IAsyncDisposable
{
    readonly CancellationTokenSource _cancel;
    readonly Channel<PromptEvent> _events = Channel.CreateUnbounded<PromptEvent>(new() { SingleReader = true });
    readonly Task[] _pumps;

    GenerationRun(ILlmEngine engine, IReadOnlyList<GenerationRequest> requests, RequestObserver observer,
        CancellationToken cancellationToken)
    {
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var firsts = new TaskCompletionSource[requests.Count];
        _pumps = new Task[requests.Count];
        for (var i = 0; i < requests.Count; i++)
        {
            firsts[i] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _pumps[i] = PumpAsync(engine, requests[i], i, firsts[i], observer);
        }
        FirstEvents = Task.WhenAll(firsts.Select(f => f.Task));
        _ = CompleteWhenPumpsEndAsync();
    }

    Task FirstEvents { get; }

    public static async Task<GenerationRun> StartAsync(ILlmEngine engine, IReadOnlyList<GenerationRequest> requests,
        RequestObserver observer, CancellationToken cancellationToken)
    {
        var run = new GenerationRun(engine, requests, observer, cancellationToken);
        try
        {
            await run.FirstEvents;
            return run;
        }
        catch
        {
            await run.DisposeAsync();
            throw;
        }
    }

    /// Events of all prompts in arrival order; throws what the engine threw (RequestFailedException) if a
    /// prompt fails after its first event.
    public async IAsyncEnumerable<PromptEvent> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var item in _events.Reader.ReadAllAsync(cancellationToken))
            yield return item;
    }

    async Task PumpAsync(ILlmEngine engine, GenerationRequest request, int promptIndex, TaskCompletionSource first,
        RequestObserver observer)
    {
        await Task.Yield();
        using var trace = observer.StartGeneration(request);
        try
        {
            await foreach (var e in engine.GenerateAsync(request, _cancel.Token))
            {
                first.TrySetResult();
                trace.OnEvent(e);
                _events.Writer.TryWrite(new PromptEvent(promptIndex, e));
            }
            first.TrySetResult();
        }
        catch (OperationCanceledException) when (_cancel.IsCancellationRequested)
        {
            // Cancelled by the client or by a sibling's failure: not a cause of its own.
            trace.OnAborted();
            first.TrySetCanceled(_cancel.Token);
        }
        catch (Exception exception)
        {
            trace.OnFailure(exception);
            if (!first.TrySetException(exception)) _events.Writer.TryComplete(exception);
            await _cancel.CancelAsync();
        }
    }

    async Task CompleteWhenPumpsEndAsync()
    {
        await Task.WhenAll(_pumps);
        _events.Writer.TryComplete();
    }

    public async ValueTask DisposeAsync()
    {
        await _cancel.CancelAsync();
        await Task.WhenAll(_pumps);
        _cancel.Dispose();
    }
}
