using System.Collections.Concurrent;
using System.Diagnostics;
using Serving.LoadGen.Clients;

namespace Serving.LoadGen.Soak;

/// What a soak run is asked to do.
internal sealed record SoakOptions(Uri HttpUrl, Uri? GrpcUrl, string? ApiKey, string? Model, TimeSpan Duration, int Concurrency,
    TimeSpan ReportInterval, double AbandonFraction, int Seed, int? ServerPid);

/// What a soak run saw: a sample per interval under load, one once the server went idle after it, and how every
/// request ended, by result and by API (a few example messages per kind of failure).
internal sealed record SoakReport(IReadOnlyList<SoakSample> Samples, SoakSample Idle, IReadOnlyDictionary<string, long> Results,
    IReadOnlyDictionary<string, long> Apis, long MultiSequenceRequests, long RequestsWithStops, IReadOnlyList<string> ErrorExamples)
{
    public long Count(SoakResult result) => Results.GetValueOrDefault(result.ToString());

    public long Requests => Results.Values.Sum();
}

/// Runs Concurrency workers, each sending the mix's next request as soon as its last one ended, for the duration;
/// samples the server every interval; then waits for it to go idle and samples once more.
internal sealed class SoakRunner(SoakOptions options)
{
    readonly ConcurrentDictionary<SoakResult, long> _results = new();
    readonly ConcurrentDictionary<SoakApi, long> _apis = new();
    readonly ConcurrentQueue<string> _errors = new();
    long _multiSequence, _withStops;

    public async Task<SoakReport> RunAsync(Action<SoakSample> onSample, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = WithSlash(options.HttpUrl), Timeout = TimeSpan.FromSeconds(30) };
        if (options.ApiKey is not null) http.DefaultRequestHeaders.Authorization = new("Bearer", options.ApiKey);
        var server = await ModelCards.FetchAsync(http, options.Model, cancellationToken);
        var mix = new SoakMix(server.MaxModelLen ?? 2048, options.AbandonFraction, options.GrpcUrl is not null, options.Seed);
        await using var client = new SoakClient(WithSlash(options.HttpUrl), options.GrpcUrl, options.ApiKey, server.ModelId);
        var monitor = new SoakMonitor(http, options.ServerPid);

        var clock = Stopwatch.StartNew();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var workers = Enumerable.Range(0, options.Concurrency).Select(_ => WorkAsync(client, mix, clock, stop.Token)).ToList();
        var samples = new List<SoakSample>();
        using (var timer = new PeriodicTimer(options.ReportInterval))
        {
            while (clock.Elapsed < options.Duration && await timer.WaitForNextTickAsync(cancellationToken))
            {
                var sample = await monitor.SampleAsync(clock.Elapsed.TotalSeconds, Total(), Count(SoakResult.ServerError), cancellationToken);
                samples.Add(sample);
                onSample(sample);
            }
        }
        await Task.WhenAll(workers);
        var idle = await WaitForIdleAsync(monitor, clock, cancellationToken);
        return new SoakReport(samples, idle, _results.ToDictionary(p => p.Key.ToString(), p => p.Value),
            _apis.ToDictionary(p => p.Key.ToString(), p => p.Value), _multiSequence, _withStops, [.. _errors.Take(20)]);
    }

    async Task WorkAsync(SoakClient client, SoakMix mix, Stopwatch clock, CancellationToken cancellationToken)
    {
        while (clock.Elapsed < options.Duration && !cancellationToken.IsCancellationRequested)
        {
            var request = mix.Next();
            var outcome = await client.SendAsync(request, cancellationToken);
            _results.AddOrUpdate(outcome.Result, 1, (_, n) => n + 1);
            _apis.AddOrUpdate(request.Api, 1, (_, n) => n + 1);
            if (request.N > 1) Interlocked.Increment(ref _multiSequence);
            if (request.Stop.Count > 0) Interlocked.Increment(ref _withStops);
            if (outcome.Result is SoakResult.ServerError or SoakResult.TransportError or SoakResult.Refused && _errors.Count < 100)
                _errors.Enqueue($"{outcome.Result} {request.Api}: {outcome.Detail}");
        }
    }

    /// The server is idle when nothing runs or waits and no KV block is held; gives up after 60 s.
    static async Task<SoakSample> WaitForIdleAsync(SoakMonitor monitor, Stopwatch clock, CancellationToken cancellationToken)
    {
        var deadline = clock.Elapsed + TimeSpan.FromSeconds(60);
        while (true)
        {
            var sample = await monitor.SampleAsync(clock.Elapsed.TotalSeconds, 0, 0, cancellationToken);
            if (sample is { Running: 0, Waiting: 0, KVUsage: 0 } || clock.Elapsed > deadline) return sample;
            await Task.Delay(200, cancellationToken);
        }
    }

    long Count(SoakResult result) => _results.GetValueOrDefault(result);

    long Total() => _results.Values.Sum();

    static Uri WithSlash(Uri uri) => uri.AbsoluteUri.EndsWith('/') ? uri : new Uri(uri.AbsoluteUri + "/");
}
