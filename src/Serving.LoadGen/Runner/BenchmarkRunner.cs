using System.Diagnostics;
using Serving.LoadGen.Clients;
using Serving.LoadGen.Datasets;

namespace Serving.LoadGen.Runner;

/// All outcomes of one run (in trace order) and its duration: from the first send to the last completion.
internal sealed record BenchmarkRun(IReadOnlyList<RequestOutcome> Outcomes, double DurationSeconds);

/// Sends a trace's requests at their arrival offsets, at most maxConcurrency in flight when given (a request
/// due while all slots are busy waits for one, as vLLM's semaphore does), and collects every outcome.
internal static class BenchmarkRunner
{
    public static async Task<BenchmarkRun> RunAsync(IReadOnlyList<BenchRequest> requests, IReadOnlyList<double> arrivalOffsets,
        int? maxConcurrency, IGenerationBackend backend, GenerationSettings settings, Action<RequestOutcome>? onCompleted,
        CancellationToken cancellationToken)
    {
        if (arrivalOffsets.Count != requests.Count) throw new ArgumentException("one arrival offset per request is needed");
        if (maxConcurrency is < 1) throw new ArgumentException($"--max-concurrency must be at least 1, got {maxConcurrency}");
        using var slots = maxConcurrency is { } max ? new SemaphoreSlim(max) : null;
        var start = Stopwatch.GetTimestamp();
        var tasks = new List<Task<RequestOutcome>>(requests.Count);
        for (var i = 0; i < requests.Count; i++)
        {
            var wait = arrivalOffsets[i] - Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (wait > 0) await Task.Delay(TimeSpan.FromSeconds(wait), cancellationToken);
            tasks.Add(SendOneAsync(requests[i], start, slots, backend, settings, onCompleted, cancellationToken));
        }
        var outcomes = await Task.WhenAll(tasks);
        return new BenchmarkRun(outcomes, Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    static async Task<RequestOutcome> SendOneAsync(BenchRequest request, long start, SemaphoreSlim? slots,
        IGenerationBackend backend, GenerationSettings settings, Action<RequestOutcome>? onCompleted, CancellationToken cancellationToken)
    {
        if (slots is not null) await slots.WaitAsync(cancellationToken);
        try
        {
            var sentAt = Stopwatch.GetElapsedTime(start).TotalSeconds;
            var outcome = await backend.SendAsync(request, settings, cancellationToken) with { Index = request.Index, SentAt = sentAt };
            onCompleted?.Invoke(outcome);
            return outcome;
        }
        finally
        {
            slots?.Release();
        }
    }
}
