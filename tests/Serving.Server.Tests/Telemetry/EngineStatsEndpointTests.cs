using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Telemetry;

/// GET /v1/engine/stats: the engine's own figures as JSON, behind the API key like every /v1 route.
[Collection("server")]
public sealed class EngineStatsEndpointTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    async Task<JsonNode> StatsAsync() => JsonNode.Parse(await _server.Http.GetStringAsync("/v1/engine/stats"))!;

    [Fact]
    public async Task StatsNeedTheApiKey()
    {
        using var anonymous = _server.NewClient(apiKey: null);
        using var response = await anonymous.GetAsync("/v1/engine/stats");
        Assert.Equal(401, (int)response.StatusCode);
    }

    [Fact]
    public async Task StatsCountAGenerationAndShowItRunning()
    {
        var before = await StatsAsync();
        var (status, _) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello world", max_tokens = 7, ignore_eos = true,
        });
        Assert.Equal(200, status);
        var after = await StatsAsync();
        Assert.Equal("engine.stats", (string?)after["object"]);
        Assert.Equal(RunningServer.Model, (string?)after["model"]);
        Assert.Equal(7, (long)after["generation_tokens"]! - (long)before["generation_tokens"]!);
        Assert.True((long)after["prompt_tokens"]! > (long)before["prompt_tokens"]!);
        Assert.True((double)after["timestamp"]! >= (double)before["timestamp"]!);
        Assert.InRange((double)after["timestamp"]!, DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 60, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1);
        var engine = _server.Engine.GetStats();
        Assert.Equal(engine.NumKVBlocks, (int)after["kv_cache_blocks"]!);
        Assert.Equal(engine.FreeKVBlocks, (int)after["kv_cache_free_blocks"]!);
        Assert.InRange((double)after["prefix_cache_hit_rate"]!, 0, 1);

        var (response, events) = await _server.StreamAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello world", max_tokens = 240, ignore_eos = true, temperature = 0, stream = true,
        });
        using (response)
        {
            Assert.NotNull(await events.NextAsync());
            var running = await StatsAsync();
            Assert.Equal(1, (int)running["requests_running"]!);
            Assert.True((double)running["kv_cache_usage"]! > 0);
        }
        await _server.WaitForStatsAsync(s => s.RunningRequests == 0);
        Assert.Equal(0, (int)(await StatsAsync())["requests_running"]!);
    }
}
