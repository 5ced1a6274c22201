namespace Serving.Server.OpenAI.Responses;

/// The background responses still generating (OpenAI's background: true): each one's work and how to cancel it. A
/// response leaves when its work ends, whatever the end; its state meanwhile is in the ResponseStore.
internal sealed class BackgroundResponses
{
    readonly Lock _lock = new();
    readonly Dictionary<string, (CancellationTokenSource Cancel, Task Work)> _running = [];

    /// Starts work for the response id, given the token that cancels it.
    public void Start(string id, Func<CancellationToken, Task> work)
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
                lock (_lock) _running.Remove(id);
                cancel.Dispose();
            }
        });
        lock (_lock) _running[id] = (cancel, running);
        registered.SetResult();
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
