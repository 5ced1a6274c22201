namespace Serving.Server.OpenAI.Responses;

/// The events of a background response created with stream: true, kept as its generation writes them (through Events,
/// which numbers them) so that any number of readers stream them from any point: the request that created it from the
/// start, a reconnecting client after the last sequence number it saw (GET /v1/responses/{id}?stream=true&starting_after=N).
/// A reader's stream ends when the generation has ended and it has read every event; a reader leaving does not stop
/// the generation.
internal sealed class ResponseEventLog(ResponseStream events)
{
    readonly Lock _lock = new();
    readonly List<ResponseEvent> _events = [];
    TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    bool _ended;

    /// What makes the response's events, numbered in order (their sequence numbers are their places here).
    public ResponseStream Events => events;

    public void Append(IEnumerable<ResponseEvent> made)
    {
        TaskCompletionSource changed;
        lock (_lock)
        {
            if (_ended) throw new InvalidOperationException("the response's events have ended");
            _events.AddRange(made);
            (changed, _changed) = (_changed, new(TaskCreationOptions.RunContinuationsAsynchronously));
        }
        changed.SetResult();
    }

    /// No event follows (the generation ended, whatever its end).
    public void End()
    {
        TaskCompletionSource changed;
        lock (_lock)
        {
            _ended = true;
            changed = _changed;
        }
        changed.TrySetResult();
    }

    /// The events after sequence number startingAfter (-1: all), then each as it comes, until the last.
    public async IAsyncEnumerable<ResponseEvent> ReadAsync(int startingAfter,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var next = (int)Math.Clamp(startingAfter + 1L, 0, int.MaxValue);
        while (true)
        {
            ResponseEvent[] ready;
            Task changed;
            bool ended;
            lock (_lock)
            {
                ready = next < _events.Count ? _events.GetRange(next, _events.Count - next).ToArray() : [];
                (changed, ended) = (_changed.Task, _ended);
            }
            foreach (var e in ready) yield return e;
            next += ready.Length;
            if (ready.Length > 0) continue;   // more may have come meanwhile
            if (ended) yield break;
            await changed.WaitAsync(cancellationToken);
        }
    }
}
