using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Engine;

/// vLLM's POST /reset_prefix_cache: after it, a prompt the cache held computes its KV again (cached_tokens 0), then is
/// cached anew; while a request holds KV blocks it is refused with 409 and an OpenAI-shaped error, changing nothing.
public sealed class PrefixCacheResetTests : IAsyncLifetime
{
    RunningServer _server = null!;

    // a context long enough that a running request outlasts an HTTP round trip (as DisconnectTests)
    public async Task InitializeAsync() => _server = await RunningServer.StartAsync(["--hf-overrides", """{"max_position_embeddings": 4096}"""]);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    async Task<int> CachedTokens(string prompt)
    {
        var (status, response) = await _server.PostAsync("/v1/completions", new { model = RunningServer.Model, prompt, max_tokens = 1 });
        Assert.Equal(200, status);
        return response!["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>();
    }

    [Fact]
    public async Task AResetPrefixIsComputedAgainAndARunningRequestRefusesTheReset()
    {
        var prompt = string.Join(" ", Enumerable.Repeat("a prompt long enough to fill whole blocks of the cache", 6));
        Assert.Equal(0, await CachedTokens(prompt));
        Assert.True(await CachedTokens(prompt) > 0, "the second time hits the cache");

        using (var reset = await _server.Http.PostAsync("/reset_prefix_cache", null))
            Assert.Equal(System.Net.HttpStatusCode.OK, reset.StatusCode);
        Assert.Equal(0, await CachedTokens(prompt));
        Assert.True(await CachedTokens(prompt) > 0, "cached anew");

        var (running, events) = await _server.StreamAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello world", max_tokens = 3000, ignore_eos = true, temperature = 0, stream = true,
        });
        using (running)
        {
            Assert.NotNull(await events.NextAsync());
            var (status, body) = await _server.PostAsync("/reset_prefix_cache", new { });
            Assert.Equal(409, status);
            Assert.Equal("invalid_request_error", body!["error"]!["type"]!.GetValue<string>());
            Assert.Contains("requests hold KV blocks", body["error"]!["message"]!.GetValue<string>());
        }
        Assert.True(await CachedTokens(prompt) > 0, "a refused reset forgets nothing");
    }
}
