using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Serving.Grpc.V1;
using Serving.Server.Engine;
using Serving.Server.Grpc;
using Serving.Server.Tests.Support;
using GenerationClient = Serving.Grpc.V1.Generation.GenerationClient;
using HealthClient = Grpc.Health.V1.Health.HealthClient;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Serving.Server.Tests.Grpc;

/// grpc.health.v1.Health follows the engine: NOT_SERVING while loading, SERVING once ready, NOT_SERVING
/// while draining and once the engine loop died.
public sealed class GrpcHealthTests
{
    const string Api = "serving.v1.Generation";

    static WebApplication Build(string model, EngineFactory factory, params string[] extra) =>
        ServerApp.Build(["--host", "127.0.0.1", "--port", "0", "--grpc-port", "0", "--model", model,
            "--served-model-name", RunningServer.Model, .. extra], factory);

    static GrpcChannel Channel(WebApplication app) =>
        GrpcChannel.ForAddress(app.Services.GetRequiredService<GrpcEndpoint>().Address!);

    [Fact]
    public async Task CheckAndWatchFollowLoadingServingAndDraining()
    {
        GatedEngine? gated = null;
        var app = Build(Fixtures.Dir("llama-gqa"), (options, logs) => gated = new GatedEngine(DefaultEngine.Create(options, logs)),
            "--max-num-seqs", "1", "--shutdown-timeout", "0");
        await app.StartAsync();
        await using var _ = app;
        using var channel = Channel(app);
        var health = new HealthClient(channel);
        using var watch = health.Watch(new HealthCheckRequest());
        Assert.Equal(ServingStatus.NotServing, await NextStatusAsync(watch));
        Assert.Equal(ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest { Service = Api })).Status);
        var generation = new GenerationClient(channel);
        var loading = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(generation, GenerateResult.Greedy(2)));
        Assert.Equal(StatusCode.Unavailable, loading.StatusCode);
        Assert.Contains("loading", loading.Status.Detail);

        gated!.Open();
        Assert.Equal(ServingStatus.Serving, await NextStatusAsync(watch));
        Assert.Equal(ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = Api })).Status);

        // A request still running when the drain starts, and a drain held (by the gate) until the draining server has
        // been looked at; once let go, --shutdown-timeout 0 aborts what is left of the request's 16 x 240 tokens.
        var longRequest = GenerateResult.Greedy(240);
        longRequest.Sampling.N = 16;
        var running = GenerateResult.ReadAsync(generation, longRequest);
        await WaitUntilAsync(() => app.Services.GetRequiredService<Serving.Engine.ILlmEngine>().GetStats().RunningRequests == 1);
        var stopping = app.StopAsync();
        Assert.Equal(ServingStatus.NotServing, await NextStatusAsync(watch));
        Assert.Equal(ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
        var draining = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(generation, GenerateResult.Greedy(2)));
        Assert.Equal(StatusCode.Unavailable, draining.StatusCode);
        Assert.Contains("draining", draining.Status.Detail);

        gated.LetDrain();
        var drained = await running;
        Assert.Contains(drained.Final.Sequences, s => s.FinishReason == Serving.Grpc.V1.FinishReason.Abort);
        Assert.False(await watch.ResponseStream.MoveNext(CancellationToken.None));   // the watch ends once drained
        await stopping;
    }

    [Fact]
    public async Task UnknownServicesAreNotFoundAndADeadEngineIsNotServing()
    {
        DyingEngine? dying = null;
        var app = Build(Fixtures.Dir("llama-gqa"), (options, logs) => dying = new DyingEngine(DefaultEngine.Create(options, logs)));
        await app.StartAsync();
        await using var _ = app;
        using var channel = Channel(app);
        var health = new HealthClient(channel);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => health.CheckAsync(new HealthCheckRequest { Service = "nope" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        using (var watchUnknown = health.Watch(new HealthCheckRequest { Service = "nope" }))
            Assert.Equal(ServingStatus.ServiceUnknown, await NextStatusAsync(watchUnknown));

        await dying!.WaitUntilReadyAsync(CancellationToken.None);
        using var watch = health.Watch(new HealthCheckRequest { Service = Api });
        Assert.Equal(ServingStatus.Serving, await NextStatusAsync(watch));
        dying.Kill();
        Assert.Equal(ServingStatus.NotServing, await NextStatusAsync(watch));
        Assert.False(await watch.ResponseStream.MoveNext(CancellationToken.None));   // nothing changes after death
        Assert.Equal(ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest { Service = Api })).Status);
        await app.StopAsync();
    }

    /// Every watcher hears the change when it comes (here: the drain).
    [Fact]
    public async Task AllWatchersHearTheDrain()
    {
        var app = Build(Fixtures.Dir("llama-gqa"), DefaultEngine.Create, "--shutdown-timeout", "0");
        await app.StartAsync();
        await using var _ = app;
        using var channel = Channel(app);
        await app.Services.GetRequiredService<Serving.Engine.ILlmEngine>().WaitUntilReadyAsync(CancellationToken.None);
        var health = new HealthClient(channel);
        var watches = Enumerable.Range(0, 200).Select(_ => health.Watch(new HealthCheckRequest())).ToList();
        foreach (var watch in watches) Assert.Equal(ServingStatus.Serving, await NextStatusAsync(watch));
        var stopping = app.StopAsync();
        foreach (var watch in watches)
        {
            Assert.Equal(ServingStatus.NotServing, await NextStatusAsync(watch));
            watch.Dispose();
        }
        await stopping;
    }

    /// Watchers wait for a change instead of polling: two thousand idle ones (no API key needed; polling every
    /// 50 ms, 4,000 took half a core) leave the server process idle. Measured on the process alone, once settled.
    [Fact]
    public async Task IdleWatchersLeaveTheServerIdle()
    {
        await using var server = ServerProcess.Start(["--model", Fixtures.Dir("llama-gqa")]);
        await server.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));
        using var channel = GrpcChannel.ForAddress(server.GrpcAddress);
        var health = new HealthClient(channel);
        var watches = Enumerable.Range(0, 2000).Select(_ => health.Watch(new HealthCheckRequest())).ToList();
        foreach (var watch in watches) Assert.Equal(ServingStatus.Serving, await NextStatusAsync(watch));
        // Setting up the streams leaves JIT and GC work behind for a few seconds.
        await Task.Delay(TimeSpan.FromSeconds(6));
        var before = server.CpuTime;
        await Task.Delay(TimeSpan.FromSeconds(3));
        var cpu = server.CpuTime - before;
        Assert.True(cpu < TimeSpan.FromMilliseconds(300), $"2000 idle watchers used {cpu.TotalMilliseconds:F0} ms of CPU in 3 s");
        foreach (var watch in watches) watch.Dispose();
    }

    static async Task<ServingStatus> NextStatusAsync(AsyncServerStreamingCall<HealthCheckResponse> watch)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        Assert.True(await watch.ResponseStream.MoveNext(timeout.Token));
        return watch.ResponseStream.Current.Status;
    }

    static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition never held");
            await Task.Delay(5);
        }
    }
}
