using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// vLLM's truncate_prompt_tokens: a prompt keeps only its last k tokens, so a text too long for the context (the
/// fixture serves 256 tokens) is taken; -1 keeps the last max_model_len; other values are a 400 naming the field.
[Collection("server")]
public sealed class TruncatePromptTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    static readonly string LongText = string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 400));

    static int[] Ids(JsonNode? array) => [.. array!.AsArray().Select(id => id!.GetValue<int>())];

    [Fact]
    public async Task ATextPromptKeepsItsLastTokens()
    {
        var whole = await _server.PostAsync("/v1/completions", new { model = RunningServer.Model, prompt = LongText, max_tokens = 2 });
        Assert.Equal(400, whole.Status);

        var (status, body) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = LongText, max_tokens = 2, truncate_prompt_tokens = 12, return_token_ids = true,
        });
        Assert.Equal(200, status);
        Assert.Equal(12, body!["usage"]!["prompt_tokens"]!.GetValue<int>());
        // the text repeats a sentence: its last 12 tokens are those of a shorter run of it
        var shorter = await _server.PostAsync("/tokenize", new { model = RunningServer.Model, prompt = LongText[..(LongText.Length / 20)] });
        Assert.Equal(Ids(shorter.Body!["tokens"])[^12..], Ids(body["choices"]![0]!["prompt_token_ids"]));
    }

    [Fact]
    public async Task TokenIdPromptsAndChatsAreTruncatedToo()
    {
        int[] ids = [.. Enumerable.Range(10, 40)];
        var (_, completion) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = ids, max_tokens = 1, truncate_prompt_tokens = 10, return_token_ids = true,
        });
        Assert.Equal(ids[^10..], Ids(completion!["choices"]![0]!["prompt_token_ids"]));

        var (status, chat) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = LongText } }, max_tokens = 2,
            truncate_prompt_tokens = 20,
        });
        Assert.Equal(200, status);
        Assert.Equal(20, chat!["usage"]!["prompt_tokens"]!.GetValue<int>());

        // -1: the model's context, here more than the prompt holds
        var (_, all) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = ids, max_tokens = 1, truncate_prompt_tokens = -1,
        });
        Assert.Equal(40, all!["usage"]!["prompt_tokens"]!.GetValue<int>());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-2)]
    [InlineData(257)]
    public async Task OtherValuesAreRefused(int value)
    {
        var (status, body) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello", max_tokens = 1, truncate_prompt_tokens = value,
        });
        Assert.Equal(400, status);
        Assert.Equal("truncate_prompt_tokens", body!["error"]!["param"]!.GetValue<string>());
    }
}
