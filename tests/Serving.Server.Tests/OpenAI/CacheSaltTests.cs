using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// vLLM's cache_salt: a request hits prefix-cache blocks only of earlier requests with the same salt, so one tenant
/// cannot learn another's prompts from cache hits; unsalted requests share among themselves as before.
[Collection("server")]
public sealed class CacheSaltTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    async Task<int> CachedTokens(string prompt, string? salt)
    {
        var body = new Dictionary<string, object?> { ["model"] = RunningServer.Model, ["prompt"] = prompt, ["max_tokens"] = 1 };
        if (salt is not null) body["cache_salt"] = salt;
        var (status, response) = await _server.PostAsync("/v1/completions", body);
        Assert.Equal(200, status);
        return response!["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>();
    }

    [Fact]
    public async Task BlocksAreSharedOnlyUnderTheSameSalt()
    {
        var prompt = $"{Guid.NewGuid():N} " + string.Join(" ", Enumerable.Repeat("salted prompts keep their blocks apart", 5));
        Assert.Equal(0, await CachedTokens(prompt, "tenant-a"));
        Assert.True(await CachedTokens(prompt, "tenant-a") > 0, "the same salt hits");
        Assert.Equal(0, await CachedTokens(prompt, "tenant-b"));
        Assert.Equal(0, await CachedTokens(prompt, null));
        Assert.True(await CachedTokens(prompt, null) > 0, "unsalted requests share among themselves");

        // chat and gRPC take it too
        var (chatStatus, chat) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = prompt } }, max_tokens = 1, cache_salt = "tenant-c",
        });
        Assert.Equal(200, chatStatus);
        Assert.Equal(0, chat!["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>());
        var request = GenerateResult.Greedy(1, text: prompt);
        request.CacheSalt = "tenant-a";
        var grpc = await GenerateResult.ReadAsync(_server.Grpc(), request);
        Assert.True(grpc.Final.Usage.CachedPromptTokens > 0, "tenant-a's blocks, reached over gRPC");
    }

    [Fact]
    public async Task AnEmptySaltIsRefused()
    {
        var (status, body) = await _server.PostAsync("/v1/completions", new { model = RunningServer.Model, prompt = "Hi", max_tokens = 1, cache_salt = "" });
        Assert.Equal(400, status);
        Assert.Equal("cache_salt", body!["error"]!["param"]!.GetValue<string>());
    }
}
