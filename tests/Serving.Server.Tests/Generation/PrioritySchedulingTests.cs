using Grpc.Core;
using Serving.Engine;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Generation;

/// --scheduling-policy priority through the real server: a request's "priority" (vLLM's field, lower first) decides
/// which waiting request runs next, over HTTP and gRPC alike; the default policy refuses a priority.
public sealed class PrioritySchedulingTests
{
    [Fact]
    public async Task AHigherPriorityRequestOvertakesTheQueue()
    {
        // a preset with 4,096 positions: the running request cannot finish before the queue is built
        FirstScheduled? recorder = null;
        await using var server = await RunningServer.StartAsync(["--scheduling-policy", "priority", "--max-num-seqs", "1"], model: "tiny-gqa",
            engineFactory: (options, logging) => recorder = new FirstScheduled(Serving.Server.Engine.DefaultEngine.Create(options, logging)));
        var (blocker, events) = await server.StreamAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello world", max_tokens = 4000, ignore_eos = true, stream = true,
        });
        using var _ = blocker;
        Assert.NotNull(await events.NextAsync());   // running: everything after it waits

        var finished = new List<string>();
        async Task Complete(string name, int priority)
        {
            var (status, body) = await server.PostAsync("/v1/completions",
                new { model = RunningServer.Model, prompt = "The server", max_tokens = 200, ignore_eos = true, priority });
            Assert.Equal(200, status);
            lock (finished) finished.Add(name);
        }
        var low = Complete("low", 5);
        await server.WaitForStatsAsync(s => s.WaitingRequests == 1);
        var normal = Complete("normal", 0);
        await server.WaitForStatsAsync(s => s.WaitingRequests == 2);
        // the HTTP ones run 200 tokens each, alone (one sequence at a time), so their ends are far apart; the gRPC one
        // is short, so its stream is read at once (a long stream's reading can lag behind a busy test process)
        var urgent = GenerateResult.Greedy(4, text: "The server");
        urgent.Priority = -9;
        var grpcDone = Task.Run(async () =>
        {
            await GenerateResult.ReadAsync(server.Grpc(), urgent);
            lock (finished) finished.Add("urgent");
        });
        await server.WaitForStatsAsync(s => s.WaitingRequests == 3);
        blocker.Dispose();   // the running request goes; the queue drains in priority order
        await Task.WhenAll(low, normal, grpcDone);
        Assert.Equal(3, finished.Count);
        // the order the engine scheduled them in (when each left the queue, by the engine's own clock), not the order
        // their answers reached this busy test process
        Assert.Equal([-9, 0, 5], recorder!.PrioritiesInOrder());
    }

    [Fact]
    public async Task FirstComeFirstServedRefusesAPriorityNamingIt()
    {
        await using var server = await RunningServer.StartAsync();
        var (status, body) = await server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 2, priority = 1,
        });
        Assert.Equal(400, status);
        Assert.Equal("priority", body!["error"]!["param"]!.GetValue<string>());
        Assert.Contains("--scheduling-policy priority", body["error"]!["message"]!.GetValue<string>());
        var request = GenerateResult.Greedy(2, text: "Hi");
        request.Priority = 1;
        var error = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(server.Grpc(), request));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    [Fact]
    public void ThePolicyFlagBindsAndABadOneIsAStartupError()
    {
        var options = Options.ServerCommandLineTests.Bind(Serving.Server.Options.ServerCommandLine.ToConfiguration(["--scheduling-policy", "priority"]));
        Assert.Equal(Serving.Engine.SchedulingPolicy.Priority, options.ToEngineOptions().SchedulingPolicy);
        Assert.Equal(Serving.Engine.SchedulingPolicy.Fcfs, new Serving.Server.Options.ServerOptions().ToEngineOptions().SchedulingPolicy);
        Assert.Contains("scheduling-policy must be fcfs or priority (got 'lifo')",
            Options.ServerCommandLineTests.Bind(Serving.Server.Options.ServerCommandLine.ToConfiguration(["--scheduling-policy", "lifo"])).Validate());
    }

    /// The real engine, noting when each request was first scheduled: its arrival here plus the queue time its last
    /// event reports.
    sealed class FirstScheduled(ILlmEngine inner) : DelegatingEngine(inner)
    {
        readonly List<(int Priority, long Scheduled)> _scheduled = [];

        /// The priorities of the requests that ran to their end (not the aborted blocker), in the order they were scheduled.
        public int[] PrioritiesInOrder()
        {
            lock (_scheduled) return [.. _scheduled.OrderBy(s => s.Scheduled).Select(s => s.Priority)];
        }

        public override async IAsyncEnumerable<TokenEvent> GenerateAsync(GenerationRequest request,
            [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
        {
            var arrival = System.Diagnostics.Stopwatch.GetTimestamp();
            await foreach (var e in Inner.GenerateAsync(request, cancellationToken))
            {
                if (e.Timings is { } timings && e.FinishReason != FinishReason.Abort)
                    lock (_scheduled) _scheduled.Add((request.Priority, arrival + (long)(timings.Queue.TotalSeconds * System.Diagnostics.Stopwatch.Frequency)));
                yield return e;
            }
        }
    }
}
