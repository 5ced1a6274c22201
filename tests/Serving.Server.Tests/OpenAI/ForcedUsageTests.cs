using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// vLLM's --enable-force-include-usage: every completions and chat stream ends with a usage chunk (no choices), as if
/// its stream_options asked include_usage; continuous_usage_stats still needs the request to ask.
public sealed class ForcedUsageTests
{
    static async Task<List<System.Text.Json.Nodes.JsonNode>> StreamAsync(RunningServer server, string path, object body)
    {
        var (response, events) = await server.StreamAsync(path, body);
        using (response)
        using (events)
            return await events.ReadAllAsync();
    }

    [Fact]
    public async Task EveryStreamEndsWithItsUsage()
    {
        await using var server = await RunningServer.StartAsync(["--enable-force-include-usage"]);
        var chat = await StreamAsync(server, "/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 3, ignore_eos = true, stream = true,
        });
        var last = chat[^1];
        Assert.Empty(last["choices"]!.AsArray());
        Assert.Equal(3, last["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.All(chat[..^1], chunk => Assert.Null(chunk["usage"]));   // no continuous usage unless asked
        var completion = await StreamAsync(server, "/v1/completions",
            new { model = RunningServer.Model, prompt = "Hi", max_tokens = 2, ignore_eos = true, stream = true });
        Assert.Equal(2, completion[^1]["usage"]!["completion_tokens"]!.GetValue<int>());

        await using var plain = await RunningServer.StartAsync();
        var unforced = await StreamAsync(plain, "/v1/completions",
            new { model = RunningServer.Model, prompt = "Hi", max_tokens = 2, ignore_eos = true, stream = true });
        Assert.All(unforced, chunk => Assert.Null(chunk["usage"]));
    }
}
