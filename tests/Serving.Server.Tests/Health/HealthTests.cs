using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Health;

public sealed class HealthTests
{
    [Fact]
    public async Task ProbesAreOpenAndReadyOnceLoaded()
    {
        await using var server = await RunningServer.StartAsync();
        using var anonymous = server.NewClient(apiKey: null);
        Assert.Equal("ready", await anonymous.GetStringAsync("/health"));
        Assert.Equal("ready", await anonymous.GetStringAsync("/health/ready"));
    }

    [Fact]
    public async Task ProbesAnswerHeadAndVersionIsOpen()
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
