using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Health;

public sealed class HealthTests
{
    [Fact]
    public async Task Probes_are_open_and_ready_once_loaded()
    {
        await using var server = await RunningServer.StartAsync();
        using var anonymous = server.NewClient(apiKey: null);
        Assert.Equal("ready", await anonymous.GetStringAsync("/health"));
        Assert.Equal("ready", await anonymous.GetStringAsync("/health/ready"));
    }

    [Fact]
    public async Task A_model_that_fails_to_load_makes_every_probe_and_route_503()
    {
        using var broken = new TempDirectory();
        await File.WriteAllTextAsync(broken.File("config.json"), "{ not json");
        var app = ServerApp.Build(["--host", "127.0.0.1", "--port", "0", "--model", broken.Path], Serving.Server.Engine.DefaultEngine.Create);
        await app.StartAsync();
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while ((int)(await client.GetAsync("/health")).StatusCode != 503 && DateTime.UtcNow < deadline) await Task.Delay(20);
            Assert.Equal(503, (int)(await client.GetAsync("/health")).StatusCode);
            Assert.Equal(503, (int)(await client.GetAsync("/health/ready")).StatusCode);
            using var models = await client.GetAsync("/v1/models");
            Assert.Equal(503, (int)models.StatusCode);
            Assert.Contains("engine_unavailable", await models.Content.ReadAsStringAsync());
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
