#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK
using System.ClientModel;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using OpenAI.Chat;
using System.ClientModel.Primitives;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// The official OpenAI .NET SDK and Microsoft.Extensions.AI against the real server.
[Collection("server")]
public sealed class OpenAISdkTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;
    static readonly FixtureReference Reference = Fixtures.Reference("llama-gqa");

    ChatClient Chat => _server.OpenAI().GetChatClient(RunningServer.Model);

    [Fact]
    public async Task ChatAnswersWithUsageAndStreamsTheSameGreedyText()
    {
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0 };
        ChatCompletion whole = await Chat.CompleteChatAsync([new UserChatMessage("Hello!")], options);
        Assert.Equal(ChatMessageRole.Assistant, whole.Role);
        Assert.Equal(18, whole.Usage.InputTokenCount);   // the fixture's rendered chat with the generation prompt
        Assert.InRange(whole.Usage.OutputTokenCount, 1, 12);
        Assert.Equal(whole.Usage.InputTokenCount + whole.Usage.OutputTokenCount, whole.Usage.TotalTokenCount);
        Assert.Equal(RunningServer.Model, whole.Model);

        var text = new System.Text.StringBuilder();
        global::OpenAI.Chat.ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        var updates = 0;
        await foreach (var update in Chat.CompleteChatStreamingAsync([new UserChatMessage("Hello!")], options))
        {
            updates++;
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish = update.FinishReason ?? finish;
            usage = update.Usage ?? usage;
        }
        Assert.True(updates > 2);
        Assert.Equal(whole.Content[0].Text, text.ToString());
        Assert.Equal(whole.FinishReason, finish);
        Assert.Equal(whole.Usage.OutputTokenCount, usage?.OutputTokenCount);
    }

    [Fact]
    public async Task ChatLogprobsListEveryTokenWithItsAlternatives()
    {
        var options = new ChatCompletionOptions
        {
            MaxOutputTokenCount = 6, Temperature = 0, IncludeLogProbabilities = true, TopLogProbabilityCount = 3,
        };
        ChatCompletion result = await Chat.CompleteChatAsync([new UserChatMessage("Hi")], options);
        var tokens = result.ContentTokenLogProbabilities;
        Assert.Equal(result.Usage.OutputTokenCount, tokens.Count);
        foreach (var token in tokens)
        {
            Assert.InRange(token.LogProbability, -9999f, 0f);
            Assert.Equal(3, token.TopLogProbabilities.Count);
            // Greedy picks the most likely token: it leads its own alternatives.
            Assert.Equal(token.TopLogProbabilities[0].LogProbability, token.LogProbability, 3);
            Assert.NotNull(token.Utf8Bytes);
        }
    }

    [Fact]
    public async Task SeededSamplingRepeatsAndDifferentSeedsDiffer()
    {
        async Task<string> Sample(long seed)
        {
            var options = new ChatCompletionOptions { MaxOutputTokenCount = 16, Temperature = 1, Seed = seed };
            ChatCompletion result = await Chat.CompleteChatAsync([new UserChatMessage("Tell me")], options);
            return string.Join(",", result.ContentTokenLogProbabilities.Count) + result.Content[0].Text + result.Usage.OutputTokenCount;
        }
        Assert.Equal(await Sample(42), await Sample(42));
        Assert.NotEqual(await Sample(1), await Sample(2));
    }

    [Fact]
    public async Task StopStringsCutTheTextAndFinishWithStop()
    {
        var prompt = Reference.Prompts[2]; // greedy text "pre4 can can aameameame ..."
        var body = await CompleteAsync(new
        {
            model = RunningServer.Model, prompt = prompt.InputIds, max_tokens = 16, temperature = 0, ignore_eos = true, stop = new[] { "can" },
        });
        var choice = body["choices"]![0]!;
        Assert.Equal("pre4 ", choice["text"]!.GetValue<string>());
        Assert.Equal("stop", choice["finish_reason"]!.GetValue<string>());
        Assert.Equal("can", choice["stop_reason"]!.GetValue<string>());
        var chat = await Chat.CompleteChatAsync([new UserChatMessage("Hello!")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 1 });
        Assert.NotNull(chat.Value.Content);
    }

    [Fact]
    public async Task LegacyCompletionsNumberChoicesPerPromptAndReportLogprobs()
    {
        var body = await CompleteAsync(new
        {
            model = RunningServer.Model, prompt = new[] { "Hello world", "The server" }, n = 2, max_tokens = 5,
            temperature = 0.8, seed = 7, ignore_eos = true, logprobs = 2, echo = false,
        });
        var choices = body["choices"]!.AsArray();
        Assert.Equal([0, 1, 2, 3], choices.Select(c => c!["index"]!.GetValue<int>()).Order());
        foreach (var choice in choices)
        {
            var logprobs = choice!["logprobs"]!;
            Assert.Equal(5, logprobs["tokens"]!.AsArray().Count);
            Assert.Equal(5, logprobs["token_logprobs"]!.AsArray().Count);
            Assert.Equal(5, logprobs["top_logprobs"]!.AsArray().Count);
            var offsets = logprobs["text_offset"]!.AsArray().Select(o => o!.GetValue<int>()).ToList();
            Assert.Equal(offsets.Order(), offsets);
            Assert.Equal("length", choice["finish_reason"]!.GetValue<string>());
        }
        Assert.Equal(20, body["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.Equal("text_completion", body["object"]!.GetValue<string>());
    }

    [Fact]
    public async Task EchoPrefixesThePromptText()
    {
        var (status, body) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello world", max_tokens = 3, temperature = 0, echo = true, ignore_eos = true,
        });
        Assert.Equal(200, status);
        Assert.StartsWith("Hello world", body!["choices"]![0]!["text"]!.GetValue<string>());
    }

    [Fact]
    public async Task ChatWithNReturnsNChoicesAndTextPartsAreAccepted()
    {
        var (status, body) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, n = 3, max_completion_tokens = 4, temperature = 1, seed = 3,
            messages = new object[] { new { role = "user", content = new[] { new { type = "text", text = "Hi" } } } },
        });
        Assert.Equal(200, status);
        Assert.Equal([0, 1, 2], body!["choices"]!.AsArray().Select(c => c!["index"]!.GetValue<int>()));
        Assert.All(body["choices"]!.AsArray(), c => Assert.Equal("assistant", c!["message"]!["role"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Extensions_AI_chat_client_streams_a_chat()
    {
        IChatClient client = Chat.AsIChatClient();
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync("Hello!", new ChatOptions { MaxOutputTokens = 8, Temperature = 0 }))
            updates.Add(update);
        Assert.True(updates.Count > 2);
        Assert.Contains(updates, u => u.FinishReason is not null);
        var response = updates.ToChatResponse();
        Assert.Equal(RunningServer.Model, response.ModelId);
        Assert.NotNull(response.Usage);
        Assert.Equal(18, response.Usage!.InputTokenCount);
    }

    [Fact]
    public async Task ModelsListsTheServedModel()
    {
        var model = await _server.OpenAI().GetOpenAIModelClient().GetModelAsync(RunningServer.Model);
        Assert.Equal(RunningServer.Model, model.Value.Id);
        var list = await _server.OpenAI().GetOpenAIModelClient().GetModelsAsync();
        Assert.Equal(RunningServer.Model, Assert.Single(list.Value).Id);
    }

    /// The SDK's LegacyCompletionClient is internal in 2.15, so /v1/completions goes through the SDK's own
    /// pipeline (its bearer authentication, retries and error handling) with the request as JSON.
    async Task<JsonNode> CompleteAsync(object body)
    {
        var pipeline = Chat.Pipeline;
        using var message = pipeline.CreateMessage();
        message.Request.Method = "POST";
        message.Request.Uri = new Uri(_server.BaseAddress, "/v1/completions");
        message.Request.Headers.Set("Content-Type", "application/json");
        message.Request.Content = BinaryContent.Create(BinaryData.FromString(JsonSerializer.Serialize(body)));
        message.ResponseClassifier = PipelineMessageClassifier.Create([200]);
        await pipeline.SendAsync(message);
        Assert.False(message.Response!.IsError, message.Response.Content.ToString());
        return JsonNode.Parse(message.Response.Content.ToString())!;
    }
}
