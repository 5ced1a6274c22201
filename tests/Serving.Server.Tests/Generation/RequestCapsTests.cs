using System.Diagnostics;
using System.Text.Json;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Generation;

/// A request's size is capped where it is cheap to check: prompts per request (--max-prompts-per-request) and
/// sequences, prompts x n (--max-seqs-per-request), both before any prompt is tokenized. The waiting queue
/// counts sequences, not requests, and a request that could never be queued is a 400 (no retry helps), not 429.
public sealed class RequestCapsTests
{
    static object Completion(object prompt, int n, int maxTokens = 2, int? logprobs = null, bool stream = false) => new
    {
        model = RunningServer.Model, prompt, n, max_tokens = maxTokens, logprobs, ignore_eos = true, stream,
    };

    [Fact]
    public async Task PromptsAndSequencesOverTheCapsAreRefusedAtOnceWithOneLogLine()
    {
        await using var server = await RunningServer.StartAsync(["--max-request-body-bytes", $"{4 << 20}"]);
        var log = LogCapture.AttachTo(server);
        // The attacks: 96 prompts x n=16 with 20 logprobs each (a 148 MB answer), 1,020 prompts x n=16, 300,000 prompts.
        var cases = new (object Body, string Message)[]
        {
            (Completion(Enumerable.Repeat("Hi", 96).ToArray(), n: 16, maxTokens: 200, logprobs: 20), "1536 sequences"),
            (Completion(Enumerable.Repeat("Hi", 1020).ToArray(), n: 16), "1020 prompts"),
            (Completion(Enumerable.Repeat(new[] { 5 }, 300_000).ToArray(), n: 1), "300000 prompts"),
        };
        foreach (var (body, message) in cases)
        {
            var clock = Stopwatch.StartNew();
            var (status, error) = await server.PostAsync("/v1/completions", body);
            Assert.Equal(400, status);
            Assert.Equal("prompt", error!["error"]!["param"]!.GetValue<string>());
            Assert.Contains(message, error["error"]!["message"]!.GetValue<string>());
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"refused after {clock.Elapsed}");
        }
        var (chatStatus, chatError) = await server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hi" } }, n = 16, max_tokens = 2,
        });
        Assert.Equal(200, chatStatus); // n alone is within both caps
        Assert.Null(chatError!["error"]);
        Assert.Equal(cases.Length, log.Entries.Count(e => e.Text.Contains("rejected with 400", StringComparison.Ordinal)));
        Assert.True(log.Entries.Count < 40, $"{log.Entries.Count} log lines for {cases.Length + 1} requests");
        Assert.DoesNotContain(log.Entries, e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning);
    }

    [Fact]
    public async Task ARequestAtTheCapsIsServed()
    {
        await using var server = await RunningServer.StartAsync(["--max-seqs-per-request", "64", "--max-prompts-per-request", "8"]);
        var (status, body) = await server.PostAsync("/v1/completions", Completion(Enumerable.Repeat("Hi", 8).ToArray(), n: 8));
        Assert.Equal(200, status);
        Assert.Equal(64, body!["choices"]!.AsArray().Count);
        var (over, error) = await server.PostAsync("/v1/completions", Completion(Enumerable.Repeat("Hi", 9).ToArray(), n: 1));
        Assert.Equal((400, "prompt"), (over, error!["error"]!["param"]!.GetValue<string>()));
        var (tooMany, seqError) = await server.PostAsync("/v1/completions", Completion(Enumerable.Repeat("Hi", 5).ToArray(), n: 16));
        Assert.Equal((400, "prompt"), (tooMany, seqError!["error"]!["param"]!.GetValue<string>()));
    }

    [Fact]
    public async Task TheQueueCountsSequencesAndARequestThatNeverFitsIsA400()
    {
        // tiny-gqa's 4,096 positions: the running request cannot finish (and free the slot) while the test looks
        await using var server = await RunningServer.StartAsync(["--max-num-seqs", "1", "--max-num-queued-reqs", "4"], model: "tiny-gqa");
        var (running, runningEvents) = await server.StreamAsync("/v1/completions", Completion("Hello", n: 1, maxTokens: 4000, stream: true));
        Assert.NotNull(await runningEvents.NextAsync());
        // Its answer starts only once it is scheduled, so it is not awaited here.
        var waiting = server.PostAsync("/v1/completions", Completion("Hello", n: 4, maxTokens: 2));
        try
        {
            await server.WaitForStatsAsync(s => s.WaitingRequests > 0);
            // Four sequences wait: one more sequence is over the queue (429, retry later) ...
            var (full, fullError) = await server.PostAsync("/v1/completions", Completion("Hello", n: 1));
            Assert.Equal(429, full);
            Assert.Equal("queue_full", fullError!["error"]!["code"]!.GetValue<string>());
            // ... and five sequences could never be queued (400, no retry helps), over HTTP and gRPC alike.
            var (never, neverError) = await server.PostAsync("/v1/completions", Completion("Hello", n: 5));
            Assert.Equal((400, "n"), (never, neverError!["error"]!["param"]!.GetValue<string>()));
            var request = GenerateResult.Greedy(2);
            request.Sampling.N = 5;
            var grpcError = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(() => GenerateResult.ReadAsync(server.Grpc(), request));
            Assert.Equal(global::Grpc.Core.StatusCode.InvalidArgument, grpcError.StatusCode);
        }
        finally
        {
            running.Dispose();
            runningEvents.Dispose();
        }
        Assert.Equal(200, (await waiting).Status);
        await server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0 && s.KVUsage == 0);
        var (status, _) = await server.PostAsync("/v1/completions", Completion("Hello", n: 4));
        Assert.Equal(200, status);
    }
}
