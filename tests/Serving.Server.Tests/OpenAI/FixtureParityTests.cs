using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// The server reproduces transformers' numbers for the llama-gqa fixture: greedy tokens, token ids, chats.
[Collection("server")]
public sealed class FixtureParityTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;
    static readonly FixtureReference Reference = Fixtures.Reference("llama-gqa");

    static int[] Ints(JsonNode? node) => [.. node!.AsArray().Select(n => n!.GetValue<int>())];

    [Fact]
    public async Task GreedyCompletionsOfTokenIdPromptsReproduceGreedy16()
    {
        foreach (var prompt in Reference.Prompts)
        {
            var (status, body) = await _server.PostAsync("/v1/completions", new
            {
                model = RunningServer.Model, prompt = prompt.InputIds, max_tokens = 16, temperature = 0,
                ignore_eos = true, return_token_ids = true,
            });
            Assert.Equal(200, status);
            var choice = body!["choices"]![0]!;
            Assert.Equal(prompt.Greedy16, Ints(choice["token_ids"]));
            Assert.Equal(prompt.InputIds, Ints(choice["prompt_token_ids"]));
            Assert.Equal("length", choice["finish_reason"]!.GetValue<string>());
            Assert.Equal(prompt.InputIds.Length, body["usage"]!["prompt_tokens"]!.GetValue<int>());
            Assert.Equal(16, body["usage"]!["completion_tokens"]!.GetValue<int>());
            Assert.Equal(prompt.InputIds.Length + 16, body["usage"]!["total_tokens"]!.GetValue<int>());
            Assert.NotNull(body["usage"]!["prompt_tokens_details"]!["cached_tokens"]);
        }
    }

    [Fact]
    public async Task TextPromptsTokenizeLikeTheReferenceAndStreamTheSameTokens()
    {
        var prompt = Reference.Prompts[0];
        var (response, events) = await _server.StreamAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = prompt.Text, max_tokens = 16, temperature = 0, ignore_eos = true,
            return_token_ids = true, stream = true, stream_options = new { include_usage = true },
        });
        using (response)
        using (events)
        {
            Assert.Equal(200, (int)response.StatusCode);
            var chunks = await events.ReadAllAsync();
            Assert.True(events.SawDone);
            var choices = chunks.SelectMany(c => c["choices"]!.AsArray()).ToList();
            Assert.Equal(prompt.InputIds, Ints(choices[0]!["prompt_token_ids"]));
            Assert.Equal(prompt.Greedy16, choices.SelectMany(c => Ints(c!["token_ids"])).ToArray());
            Assert.Equal("length", choices[^1]!["finish_reason"]!.GetValue<string>());
            var usage = chunks[^1]["usage"]!;
            Assert.Empty(chunks[^1]["choices"]!.AsArray());
            Assert.Equal((prompt.InputIds.Length, 16), (usage["prompt_tokens"]!.GetValue<int>(), usage["completion_tokens"]!.GetValue<int>()));
        }
    }

    [Fact]
    public async Task TokenizeReproducesTheReferenceIdsAndDetokenizeInvertsThem()
    {
        foreach (var item in Reference.Tokenize)
        {
            var (status, body) = await _server.PostAsync("/tokenize", new { model = RunningServer.Model, prompt = item.Text });
            Assert.Equal(200, status);
            Assert.Equal(item.Ids, Ints(body!["tokens"]));
            Assert.Equal(item.Ids.Length, body["count"]!.GetValue<int>());
            Assert.Equal(256, body["max_model_len"]!.GetValue<int>());
        }
        var (_, text) = await _server.PostAsync("/detokenize", new { tokens = Reference.Tokenize[0].Ids });
        Assert.Equal(Reference.Tokenize[0].Text, text!["prompt"]!.GetValue<string>());
    }

    [Fact]
    public async Task TokenizeRendersChatsLikeTheReferenceTemplate()
    {
        foreach (var chat in Reference.Chat)
        {
            var (status, body) = await _server.PostAsync("/tokenize", new
            {
                messages = chat.Messages.Select(m => new { role = m.Role, content = m.Content }),
                add_generation_prompt = chat.AddGenerationPrompt, return_token_strs = true,
            });
            Assert.Equal(200, status);
            Assert.Equal(chat.RenderedIds, Ints(body!["tokens"]));
            Assert.Equal(chat.RenderedIds.Length, body["token_strs"]!.AsArray().Count);
            var (_, text) = await _server.PostAsync("/detokenize", new { tokens = chat.RenderedIds });
            Assert.Equal(chat.Rendered, text!["prompt"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task ChatPromptsAreTheRenderedTemplateTokens()
    {
        var chat = Reference.Chat[0];
        var (status, body) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = chat.Messages.Select(m => new { role = m.Role, content = m.Content }),
            max_tokens = 4, temperature = 0, return_token_ids = true,
        });
        Assert.Equal(200, status);
        Assert.Equal(chat.RenderedIds, Ints(body!["prompt_token_ids"]));
        Assert.Equal(chat.RenderedIds.Length, body["usage"]!["prompt_tokens"]!.GetValue<int>());
    }
}
