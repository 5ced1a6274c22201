namespace Serving.Server.OpenAI.Responses;

/// The background responses still generating (OpenAI's background: true): each one's work and how to cancel it. A
/// response leaves when its work ends, whatever the end; its state meanwhile is in the ResponseStore. Those created with
/// stream: true keep their events (ResponseEventLog) while they generate and after, for the last FinishedLogsKept of
/// them, so a client can stream them again from where it left off.
internal sealed class BackgroundResponses
{
    /// How many finished responses' event logs stay readable (the oldest is forgotten first).
    public const int FinishedLogsKept = 64;

    readonly Lock _lock = new();
    readonly Dictionary<string, (CancellationTokenSource Cancel, Task Work)> _running = [];
    readonly Dictionary<string, ResponseEventLog> _logs = [];
    readonly Queue<string> _finishedLogs = new();

    /// The event log of a response created with background and stream (generating, or among the last finished); null
    /// for any other.
    public ResponseEventLog? Log(string id)
    {
        lock (_lock) return _logs.GetValueOrDefault(id);
    }

    /// Forgets the response's event log (the response was deleted).
    public void Forget(string id)
    {
        lock (_lock) _logs.Remove(id);
    }

    /// Starts work for the response id, given the token that cancels it; log: its events, for a streamed one, ended
    /// when the work ends.
    public void Start(string id, Func<CancellationToken, Task> work, ResponseEventLog? log = null)
    {
        var cancel = new CancellationTokenSource();
        var registered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // the work outlives the request that starts it: it does not take the request's context (its trace span among it),
        // so its generation's span is a trace of its own rather than the child of a finished request
        using var apart = ExecutionContext.SuppressFlow();
        var running = Task.Run(async () =>
        {
            await registered.Task;   // so that it cannot end, and leave, before it is here
            try
            {
                await work(cancel.Token);
            }
            finally
            {
                log?.End();
                lock (_lock)
                {
                    _running.Remove(id);
                    if (log is not null) KeepFinished(id);
                }
                cancel.Dispose();
            }
        });
        lock (_lock)
        {
            _running[id] = (cancel, running);
            if (log is not null) _logs[id] = log;
        }
        registered.SetResult();
    }

    // under the lock: the finished log stays among the last FinishedLogsKept (one deleted meanwhile stays gone)
    void KeepFinished(string id)
    {
        _finishedLogs.Enqueue(id);
        while (_finishedLogs.Count > FinishedLogsKept) _logs.Remove(_finishedLogs.Dequeue());
    }

    /// Cancels the response's work and waits for it to end; false when none runs (it finished, or never ran here).
    public async Task<bool> CancelAsync(string id)
    {
        (CancellationTokenSource Cancel, Task Work) running;
        lock (_lock)
        {
            if (!_running.TryGetValue(id, out running)) return false;
            running.Cancel.Cancel();
        }
        await running.Work;
        return true;
    }
}
