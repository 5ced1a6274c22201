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
    public async Task Check_and_watch_follow_loading_serving_and_draining()
    {
        GatedEngine? gated = null;
        var app = Build(Fixtures.Dir("llama-gqa"), (options, logs) => gated = new GatedEngine(DefaultEngine.Create(options, logs)),
            "--max-num-seqs", "1", "--shutdown-timeout", "1");
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

        // Eight sequences one at a time outlast --shutdown-timeout 1: the drain aborts what is left.
        var longRequest = GenerateResult.Greedy(240);
        longRequest.Sampling.N = 8;
        var running = GenerateResult.ReadAsync(generation, longRequest);
        await WaitUntilAsync(() => running.IsCompleted || app.Services.GetRequiredService<Serving.Engine.ILlmEngine>().GetStats().RunningRequests == 1);
        if (running.IsCompleted) await running;
        var stopping = app.StopAsync();
        Assert.Equal(ServingStatus.NotServing, await NextStatusAsync(watch));
        Assert.Equal(ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
        var draining = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(generation, GenerateResult.Greedy(2)));
        Assert.Equal(StatusCode.Unavailable, draining.StatusCode);

        var drained = await running;
        Assert.Contains(drained.Final.Sequences, s => s.FinishReason == Serving.Grpc.V1.FinishReason.Abort);
        Assert.False(await watch.ResponseStream.MoveNext(CancellationToken.None));   // the watch ends once drained
        await stopping;
    }

    [Fact]
    public async Task Unknown_services_are_not_found_and_a_dead_engine_is_not_serving()
    {
        using var broken = new TempDirectory();
        await File.WriteAllTextAsync(broken.File("config.json"), "{ not json");
        var app = Build(broken.Path, DefaultEngine.Create);
        await app.StartAsync();
        await using var _ = app;
        using var channel = Channel(app);
        var health = new HealthClient(channel);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => health.CheckAsync(new HealthCheckRequest { Service = "nope" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        using (var watchUnknown = health.Watch(new HealthCheckRequest { Service = "nope" }))
            Assert.Equal(ServingStatus.ServiceUnknown, await NextStatusAsync(watchUnknown));

        var engine = app.Services.GetRequiredService<Serving.Engine.ILlmEngine>();
        await WaitUntilAsync(() => engine.State == Serving.Engine.EngineState.Faulted);
        Assert.Equal(ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest { Service = Api })).Status);
        await app.StopAsync();
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
