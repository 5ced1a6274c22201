using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// vLLM's return_tokens_as_token_ids: log-probability listings name each token "token_id:{id}" (what RL trainers read
/// back into ids), completions and chat alike, the ids those of the tokens generated.
[Collection("server")]
public sealed class TokensAsTokenIdsTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    [Fact]
    public async Task LogprobTokensAreNamedByTheirIds()
    {
        var (status, completion) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello world", max_tokens = 5, temperature = 0, logprobs = 2,
            return_tokens_as_token_ids = true, return_token_ids = true,
        });
        Assert.Equal(200, status);
        var choice = completion!["choices"]![0]!;
        var ids = choice["token_ids"]!.AsArray().Select(t => t!.GetValue<int>()).ToList();
        Assert.Equal(ids.Select(id => $"token_id:{id}"), choice["logprobs"]!["tokens"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.All(choice["logprobs"]!["top_logprobs"]!.AsArray(), top => Assert.All(top!.AsObject(), alt => Assert.StartsWith("token_id:", alt.Key)));

        var (_, chat) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 5, temperature = 0,
            logprobs = true, top_logprobs = 2, return_tokens_as_token_ids = true, return_token_ids = true,
        });
        var chatChoice = chat!["choices"]![0]!;
        var chatIds = chatChoice["token_ids"]!.AsArray().Select(t => t!.GetValue<int>()).ToList();
        var content = chatChoice["logprobs"]!["content"]!.AsArray();
        Assert.Equal(chatIds.Select(id => $"token_id:{id}"), content.Select(t => t!["token"]!.GetValue<string>()));
        Assert.All(content, t => Assert.All(t!["top_logprobs"]!.AsArray(), alt => Assert.StartsWith("token_id:", alt!["token"]!.GetValue<string>())));

        // without the flag, the same tokens by their text
        var (_, plain) = await _server.PostAsync("/v1/completions", new { model = RunningServer.Model, prompt = "Hello world", max_tokens = 5, temperature = 0, logprobs = 0 });
        Assert.DoesNotContain(plain!["choices"]![0]!["logprobs"]!["tokens"]!.AsArray(), t => t!.GetValue<string>().StartsWith("token_id:"));
    }

    /// --return-tokens-as-token-ids makes it the server's default; a request's false still names tokens by their text.
    [Fact]
    public async Task TheServerFlagNamesThemByIdUnlessARequestSaysNo()
    {
        await using var server = await RunningServer.StartAsync(["--return-tokens-as-token-ids"]);
        var (_, byDefault) = await server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 3, temperature = 0,
            logprobs = true, return_token_ids = true,
        });
        var choice = byDefault!["choices"]![0]!;
        Assert.Equal(choice["token_ids"]!.AsArray().Select(t => $"token_id:{t!.GetValue<int>()}"),
            choice["logprobs"]!["content"]!.AsArray().Select(t => t!["token"]!.GetValue<string>()));

        var (_, byText) = await server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello world", max_tokens = 3, temperature = 0, logprobs = 0, return_tokens_as_token_ids = false,
        });
        Assert.DoesNotContain(byText!["choices"]![0]!["logprobs"]!["tokens"]!.AsArray(), t => t!.GetValue<string>().StartsWith("token_id:"));
    }
}
