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
    public async Task Probes_answer_head_and_version_is_open()
    {
        await using var server = await RunningServer.StartAsync();
        using var anonymous = server.NewClient(apiKey: null);
        foreach (var path in new[] { "/health", "/health/ready" })
        {
            using var head = await anonymous.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));
            Assert.Equal(200, (int)head.StatusCode);
        }
        var version = System.Text.Json.Nodes.JsonNode.Parse(await anonymous.GetStringAsync("/version"))!;
        Assert.Matches(@"^\d+\.\d+\.\d+", version["version"]!.GetValue<string>());
    }
}
