using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// --reasoning-parser through the real server: an answer's thinking comes as "reasoning", apart from its content,
/// whole and streamed alike. The qwen3 parser on the shared server, whose answers a regex makes think (the model is
/// random: the grammar writes the tags); the deepseek_r1 parser on a server of its own, where the prompt decides.
[Collection("tools")]
public sealed class ReasoningTests(ToolServer shared)
{
    readonly RunningServer _server = shared.Server;

    const string Thinking = "<think>\\n[a-z]{2,8}\\n</think>\\n\\n[a-z]{2,8}";

    static object ThinkingRequest(int seed, bool stream = false, bool? includeReasoning = null) => new Dictionary<string, object?>
    {
        ["model"] = RunningServer.Model, ["messages"] = new[] { new { role = "user", content = "Capital of France?" } },
        ["max_tokens"] = 64, ["seed"] = seed, ["temperature"] = 1.0, ["stream"] = stream,
        ["structured_outputs"] = new { regex = Thinking }, ["include_reasoning"] = includeReasoning,
    };

    [Fact]
    public async Task AThinkingAnswerComesAsReasoningAndContentWholeAndStreamedAlike()
    {
        for (var seed = 0; seed < 4; seed++)
        {
            var (status, body) = await _server.PostAsync("/v1/chat/completions", ThinkingRequest(seed));
            Assert.Equal(200, status);
            var message = body!["choices"]![0]!["message"]!;
            var reasoning = message["reasoning"]!.GetValue<string>();
            var content = message["content"]!.GetValue<string>();
            Assert.Matches(new Regex("^\\n[a-z]{2,8}\\n$"), reasoning);
            Assert.Matches(new Regex("^\\n\\n[a-z]{2,8}$"), content);
            Assert.Equal("stop", body["choices"]![0]!["finish_reason"]!.GetValue<string>());

            var (response, events) = await _server.StreamAsync("/v1/chat/completions", ThinkingRequest(seed, stream: true));
            using (response)
            using (events)
            {
                var chunks = (await events.ReadAllAsync()).Select(e => e["choices"]![0]!).ToList();
                var deltas = chunks.Select(c => c["delta"]!).ToList();
                Assert.Equal(reasoning, string.Concat(deltas.Select(d => d["reasoning"]?.GetValue<string>())));
                // the tokens of a tag held back send no empty chunks
                Assert.All(chunks.Skip(1), c => Assert.True(c["delta"]!.AsObject().Count > 0 || c["finish_reason"] is not null));
                Assert.Equal(content, string.Concat(deltas.Select(d => d["content"]?.GetValue<string>())));
                Assert.DoesNotContain(deltas, d => d["content"]?.GetValue<string>().Contains('<') == true);
            }

            // include_reasoning false: the thinking is left out, and still not in the content
            var (_, without) = await _server.PostAsync("/v1/chat/completions", ThinkingRequest(seed, includeReasoning: false));
            var bare = without!["choices"]![0]!["message"]!.AsObject();
            Assert.False(bare.ContainsKey("reasoning"));
            Assert.Equal(content, bare["content"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task AnAnswerThatDoesNotThinkIsAllContent()
    {
        var (status, body) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hello" } }, max_tokens = 8, seed = 3,
        });
        Assert.Equal(200, status);
        var message = body!["choices"]![0]!["message"]!.AsObject();
        Assert.False(message.ContainsKey("reasoning"));
        Assert.False(string.IsNullOrEmpty(message["content"]!.GetValue<string>()));
    }

    [Fact]
    public async Task AThoughtSentBackReachesTheTemplateAndABadOneIsRefused()
    {
        object Request(JsonNode thought) => new
        {
            model = RunningServer.Model, max_tokens = 1,
            messages = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = "Capital of France?" },
                new JsonObject { ["role"] = "assistant", ["content"] = "Paris.", ["reasoning"] = thought }),
        };
        Assert.Equal(200, (await _server.PostAsync("/v1/chat/completions", Request("It is Paris."))).Status);
        var (status, body) = await _server.PostAsync("/v1/chat/completions", Request(new JsonArray(1)));
        Assert.Equal(400, status);
        Assert.Equal("messages[1].reasoning", body!["error"]!["param"]!.GetValue<string>());
    }
}

/// deepseek_r1: an answer starts in thinking unless the prompt closed it, and then meets an output constraint after
/// its thinking. A template of the DeepSeek-R1 / Qwen3 kind, sent with the request: thinking by default, an empty
/// <think></think> at the end when enable_thinking is false.
public sealed class DeepSeekReasoningTests : IAsyncLifetime
{
    const string Template =
        "{% for m in messages %}<|{{ m.role }}|>{% if m.reasoning_content %}<think>{{ m.reasoning_content }}</think>{% endif %}" +
        "{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>" +
        "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}";

    RunningServer _server = null!;

    public async Task InitializeAsync() =>
        _server = await RunningServer.StartAsync(["--reasoning-parser", "deepseek_r1", "--trust-request-chat-template"]);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    static Dictionary<string, object?> Request(bool? enableThinking = null, bool stream = false) => new()
    {
        ["model"] = RunningServer.Model, ["messages"] = new[] { new { role = "user", content = "Why?" } }, ["max_tokens"] = 8,
        ["seed"] = 5, ["chat_template"] = Template, ["stream"] = stream, ["return_token_ids"] = true,
        ["chat_template_kwargs"] = enableThinking is null ? null : new { enable_thinking = enableThinking },
    };

    [Fact]
    public async Task AnAnswerCutOffWhileThinkingIsAllReasoningWholeAndStreamed()
    {
        var (status, body) = await _server.PostAsync("/v1/chat/completions", Request());
        Assert.Equal(200, status);
        var choice = body!["choices"]![0]!;
        Assert.Equal("length", choice["finish_reason"]!.GetValue<string>());
        var reasoning = choice["message"]!["reasoning"]!.GetValue<string>();
        Assert.NotEmpty(reasoning);
        Assert.Null(choice["message"]!["content"]);

        var (response, events) = await _server.StreamAsync("/v1/chat/completions", Request(stream: true));
        using (response)
        using (events)
        {
            var deltas = (await events.ReadAllAsync()).Select(e => e["choices"]![0]!["delta"]!.AsObject()).ToList();
            Assert.Equal(reasoning, string.Concat(deltas.Select(d => d["reasoning"]?.GetValue<string>())));
            Assert.All(deltas.Skip(1), d => Assert.False(d.ContainsKey("content")));
        }
    }

    [Fact]
    public async Task APromptThatClosedThinkingGetsContent()
    {
        var (status, body) = await _server.PostAsync("/v1/chat/completions", Request(enableThinking: false));
        Assert.Equal(200, status);
        var message = body!["choices"]![0]!["message"]!.AsObject();
        Assert.False(message.ContainsKey("reasoning"));
        Assert.NotEmpty(message["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task AConstraintHoldsAfterTheThinking()
    {
        // the prompt leaves the thinking open: the answer thinks freely (the random model never closes it here)
        var thinking = Request();
        thinking["structured_outputs"] = new { regex = "[a-z]{3}" };
        var (_, body) = await _server.PostAsync("/v1/chat/completions", thinking);
        var choice = body!["choices"]![0]!;
        Assert.Equal("length", choice["finish_reason"]!.GetValue<string>());
        Assert.NotEmpty(choice["message"]!["reasoning"]!.GetValue<string>());
        Assert.Null(choice["message"]!["content"]);
        // the prompt closed it: the constraint holds from the first token
        var closed = Request(enableThinking: false);
        closed["structured_outputs"] = new { regex = "[a-z]{3}" };
        (_, body) = await _server.PostAsync("/v1/chat/completions", closed);
        var message = body!["choices"]![0]!["message"]!.AsObject();
        Assert.False(message.ContainsKey("reasoning"));
        Assert.Matches("^[a-z]{3}$", message["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task AThoughtSentBackIsRenderedAsReasoningContent()
    {
        var request = Request();
        request["max_tokens"] = 1;
        request["messages"] = new object[]
        {
            new { role = "user", content = "Why?" },
            new { role = "assistant", content = "Because.", reasoning_content = "Think twice." },
        };
        var (_, body) = await _server.PostAsync("/v1/chat/completions", request);
        var ids = body!["prompt_token_ids"]!.AsArray().Select(id => id!.GetValue<int>()).ToArray();
        var (_, detokenized) = await _server.PostAsync("/detokenize", new { model = RunningServer.Model, tokens = ids });
        Assert.Contains("<|assistant|><think>Think twice.</think>Because.", detokenized!["prompt"]!.GetValue<string>());
    }
}
