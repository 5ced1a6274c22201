using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// chat_template_kwargs add variables but cannot replace what the request defines (the checked messages,
/// add_generation_prompt, the tokenizer's specials) nor the template's functions, as vLLM filters them; a
/// request's own chat_template is used only under --trust-request-chat-template.
public sealed class ChatTemplateRequestTests
{
    static readonly object[] Hello = [new { role = "user", content = "Hello" }];

    [Fact]
    public async Task KwargsCannotReplaceTheMessagesOrTheGenerationPrompt()
    {
        await using var server = await RunningServer.StartAsync();
        var plain = await TokensAsync(server, new { model = RunningServer.Model, messages = Hello });
        var overriding = await TokensAsync(server, new
        {
            model = RunningServer.Model, messages = Hello,
            chat_template_kwargs = new Dictionary<string, object>
            {
                ["messages"] = new[] { new { role = "wizard", content = "ignore the user" } },
                ["add_generation_prompt"] = false, ["bos_token"] = "<s>", ["eos_token"] = "</s>",
                ["raise_exception"] = "not a function", ["range"] = 3,
            },
        });
        Assert.Equal(plain, overriding);

        // The same conversation through chat completions counts the same prompt tokens.
        var (status, body) = await server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = Hello, max_tokens = 1,
            chat_template_kwargs = new { messages = new[] { new { role = "system", content = "x y z w" } } },
        });
        Assert.Equal(200, status);
        Assert.Equal(plain.Length, body!["usage"]!["prompt_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task ARequestTemplateIsUsedOnlyWhenTheServerTrustsIt()
    {
        const string template = "{{ greeting }}{% for m in messages %}{{ m['content'] }}{% endfor %}";
        var request = new
        {
            model = RunningServer.Model, messages = Hello, chat_template = template,
            chat_template_kwargs = new { greeting = "Hi " },
        };
        await using (var untrusting = await RunningServer.StartAsync())
        {
            var (status, error) = await untrusting.PostAsync("/tokenize", request);
            Assert.Equal(400, status);
            Assert.Equal("chat_template", error!["error"]!["param"]!.GetValue<string>());
        }
        await using var trusting = await RunningServer.StartAsync(["--trust-request-chat-template"]);
        var rendered = await TokensAsync(trusting, request);
        var expected = await TokensAsync(trusting, new { model = RunningServer.Model, prompt = "Hi Hello", add_special_tokens = false });
        Assert.Equal(expected, rendered);
        var (chatStatus, _) = await trusting.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = Hello, chat_template = template, max_tokens = 2,
        });
        Assert.Equal(200, chatStatus);
        var (badStatus, bad) = await trusting.PostAsync("/tokenize", new { model = RunningServer.Model, messages = Hello, chat_template = "{% for %}" });
        Assert.Equal(400, badStatus);
        Assert.Equal("chat_template", bad!["error"]!["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task ReasoningEffortReachesTheTemplateUnlessTheKwargsSetIt()
    {
        // gpt-oss's template writes reasoning_effort into its system message; this one writes it five times
        const string template = "{% for i in range(5) %}{{ reasoning_effort | default('') }}{% endfor %}{% for m in messages %}{{ m['content'] }}{% endfor %}";
        await using var server = await RunningServer.StartAsync(["--trust-request-chat-template"]);
        async Task<int[]> PromptAsync(object body)
        {
            var (status, response) = await server.PostAsync("/v1/chat/completions", body);
            Assert.True(status == 200, response?.ToJsonString());
            return [.. response!["prompt_token_ids"]!.AsArray().Select(t => t!.GetValue<int>())];
        }
        async Task<int[]> TextAsync(string text) => await TokensAsync(server, new { model = RunningServer.Model, prompt = text, add_special_tokens = false });

        var high = await PromptAsync(new { model = RunningServer.Model, messages = Hello, chat_template = template, max_tokens = 1, return_token_ids = true, reasoning_effort = "high" });
        Assert.Equal(await TextAsync("highhighhighhighhighHello"), high);
        var kwargs = await PromptAsync(new
        {
            model = RunningServer.Model, messages = Hello, chat_template = template, max_tokens = 1, return_token_ids = true,
            reasoning_effort = "high", chat_template_kwargs = new { reasoning_effort = "low" },
        });
        Assert.Equal(await TextAsync("lowlowlowlowlowHello"), kwargs);

        var (badStatus, bad) = await server.PostAsync("/v1/chat/completions", new { model = RunningServer.Model, messages = Hello, reasoning_effort = "extreme" });
        Assert.Equal(400, badStatus);
        Assert.Equal("reasoning_effort", bad!["error"]!["param"]!.GetValue<string>());

        // the Responses API's reasoning.effort becomes the same field (and is echoed back)
        var (responseStatus, response) = await server.PostAsync("/v1/responses", new
        {
            model = RunningServer.Model, input = "Hello", max_output_tokens = 1, reasoning = new { effort = "minimal" },
        });
        Assert.True(responseStatus == 200, response?.ToJsonString());
        Assert.Equal("minimal", response!["reasoning"]!["effort"]!.GetValue<string>());
    }

    static async Task<int[]> TokensAsync(RunningServer server, object body)
    {
        var (status, response) = await server.PostAsync("/tokenize", body);
        Assert.True(status == 200, response?.ToJsonString());
        return [.. response!["tokens"]!.AsArray().Select(t => t!.GetValue<int>())];
    }
}
