using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Health;

/// vLLM's GET /load under --enable-server-load-tracking: the API requests in flight, a stream counted until it ends;
/// open without the API key, as the probes are; 0 without the flag.
public sealed class ServerLoadTests
{
    static async Task<int> LoadAsync(RunningServer server)
    {
        using var open = new HttpClient { BaseAddress = server.BaseAddress };   // no API key
        return JsonNode.Parse(await open.GetStringAsync("/load"))!["server_load"]!.GetValue<int>();
    }

    [Fact]
    public async Task LoadCountsTheRequestsInFlight()
    {
        await using var server = await RunningServer.StartAsync(["--enable-server-load-tracking"]);
        Assert.Equal(0, await LoadAsync(server));
        var (response, events) = await server.StreamAsync("/v1/completions",
            new { model = RunningServer.Model, prompt = "Hello", max_tokens = 200, ignore_eos = true, stream = true });
        using (response)
        using (events)
        {
            Assert.NotNull(await events.NextAsync());   // the stream is under way
            Assert.Equal(1, await LoadAsync(server));
            await events.ReadAllAsync();
        }
        // the count falls once the response has ended
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (await LoadAsync(server) != 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(0, await LoadAsync(server));
        Assert.Equal(200, (await server.PostAsync("/v1/chat/completions",
            new { model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 2 })).Status);
        Assert.Equal(0, await LoadAsync(server));
    }

    [Fact]
    public async Task WithoutTheFlagLoadStaysZero()
    {
        await using var server = await RunningServer.StartAsync();
        var (response, events) = await server.StreamAsync("/v1/completions",
            new { model = RunningServer.Model, prompt = "Hello", max_tokens = 100, ignore_eos = true, stream = true });
        using (response)
        using (events)
        {
            Assert.NotNull(await events.NextAsync());
            Assert.Equal(0, await LoadAsync(server));
        }
    }
}
