using System.Net;
using System.Text;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// SageMaker's routes as vLLM serves them: POST /invocations answers as the API its body's fields name (chat,
/// completions; on the pooling runner embeddings, classification, score, rerank), streaming included; /ping is
/// readiness, open without the API key.
[Collection("server")]
public sealed class InvocationsTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    [Fact]
    public async Task APromptIsACompletionAndMessagesAChat()
    {
        var completion = new { model = RunningServer.Model, prompt = "Hello", max_tokens = 6, temperature = 0, ignore_eos = true };
        var (status, direct) = await _server.PostAsync("/v1/completions", completion);
        Assert.Equal(200, status);
        var (invokedStatus, invoked) = await _server.PostAsync("/invocations", completion);
        Assert.Equal(200, invokedStatus);
        Assert.Equal("text_completion", invoked!["object"]!.GetValue<string>());
        Assert.Equal(direct!["choices"]![0]!["text"]!.GetValue<string>(), invoked["choices"]![0]!["text"]!.GetValue<string>());

        var chat = new { messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 4, temperature = 0, ignore_eos = true };
        var (chatStatus, chatBody) = await _server.PostAsync("/invocations", chat);
        Assert.Equal(200, chatStatus);
        Assert.Equal("chat.completion", chatBody!["object"]!.GetValue<string>());
    }

    [Fact]
    public async Task AStreamedChatStreamsThroughIt()
    {
        var (response, events) = await _server.StreamAsync("/invocations",
            new { messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 4, stream = true });
        using (response)
        using (events)
        {
            var chunks = await events.ReadAllAsync();
            Assert.True(events.SawDone);
            Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c["object"]!.GetValue<string>()));
        }
    }

    [Theory]
    [InlineData("""{"max_tokens": 4}""", 400)]
    [InlineData("""{"input": "Hello"}""", 400)]
    [InlineData("""[1, 2]""", 400)]
    [InlineData("""{"prompt": """, 400)]
    [InlineData("""{"prompt": "Hello", "max_tokens": -1}""", 400)]
    public async Task ABodyOfNoApiIsA400(string body, int expected)
    {
        var (status, error) = await _server.PostAsync("/invocations", body);
        Assert.Equal(expected, status);
        Assert.Equal("invalid_request_error", error!["error"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task NotJsonIsA415()
    {
        using var response = await _server.Http.PostAsync("/invocations", new StringContent("prompt=Hello", Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Fact]
    public async Task PingIsReadinessWithoutTheKey()
    {
        using var client = _server.NewClient(apiKey: null);
        foreach (var method in new[] { HttpMethod.Get, HttpMethod.Post })
        {
            using var response = await client.SendAsync(new HttpRequestMessage(method, "/ping"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("ready", await response.Content.ReadAsStringAsync());
        }
        using var unauthorized = await client.PostAsync("/invocations", RunningServer.Json(new { prompt = "Hello", max_tokens = 1 }));
        Assert.Equal(HttpStatusCode.Unauthorized, unauthorized.StatusCode);
    }
}
