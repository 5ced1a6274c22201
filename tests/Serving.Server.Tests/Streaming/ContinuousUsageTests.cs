using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Streaming;

/// stream_options.continuous_usage_stats (vLLM's): with include_usage, every chunk carries its choice's usage so far,
/// counting up to the final usage; without it, chunks carry none.
[Collection("server")]
public sealed class ContinuousUsageTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    public static TheoryData<string> Paths => ["/v1/completions", "/v1/chat/completions"];

    static object Request(string path, bool continuous) => path.Contains("chat", StringComparison.Ordinal)
        ? new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hello" } }, max_tokens = 6,
            ignore_eos = true, stream = true, stream_options = new { include_usage = true, continuous_usage_stats = continuous },
        }
        : new
        {
            model = RunningServer.Model, prompt = "Hello", max_tokens = 6, ignore_eos = true, stream = true,
            stream_options = new { include_usage = true, continuous_usage_stats = continuous },
        };

    [Theory]
    [MemberData(nameof(Paths))]
    public async Task EveryChunkCountsTheTokensSoFar(string path)
    {
        var (response, events) = await _server.StreamAsync(path, Request(path, continuous: true));
        using (response)
        using (events)
        {
            var chunks = await events.ReadAllAsync();
            var final = chunks[^1]["usage"]!;
            var withChoices = chunks.Where(c => c["choices"]!.AsArray().Count > 0 && c["usage"] is JsonObject).ToList();
            var counts = withChoices.Select(c => c["usage"]!["completion_tokens"]!.GetValue<int>()).ToList();
            Assert.NotEmpty(counts);
            Assert.Equal(counts.Order(), counts);
            Assert.Equal(final["completion_tokens"]!.GetValue<int>(), counts[^1]);
            Assert.All(withChoices, c => Assert.Equal(final["prompt_tokens"]!.GetValue<int>(), c["usage"]!["prompt_tokens"]!.GetValue<int>()));
        }
        (response, events) = await _server.StreamAsync(path, Request(path, continuous: false));
        using (response)
        using (events)
        {
            var chunks = await events.ReadAllAsync();
            Assert.All(chunks.Where(c => c["choices"]!.AsArray().Count > 0), c => Assert.Null(c["usage"]));
        }
    }
}
