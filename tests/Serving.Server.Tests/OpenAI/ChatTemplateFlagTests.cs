using System.Text.Json.Nodes;
using Serving.Grpc.V1;
using Serving.Server.Options;
using Serving.Server.Tests.Options;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// --chat-template (a file, or the template itself) replaces the model's template for every chat, HTTP and gRPC
/// alike; --default-chat-template-kwargs gives every chat variables its request may override;
/// --chat-template-content-format gives templates a message's content as a string or a list of parts.
public sealed class ChatTemplateFlagTests
{
    const string Template =
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]" +
        "{% if enable_thinking is defined and enable_thinking is false %} (no thinking){% endif %}{% endif %}";

    // a multimodal release's shape: it loops over each message's parts and writes their texts
    const string PartsTemplate =
        "{% for m in messages %}[{{ m.role }}]{% for part in m['content'] %}{% if part.type == 'text' %} {{ part.text }}{% endif %}" +
        "{% endfor %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";

    static async Task<string> RenderedAsync(RunningServer server, object? kwargs = null, object? content = null)
    {
        var (status, body) = await server.PostAsync("/tokenize", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = content ?? "Hi" } }, chat_template_kwargs = kwargs,
        });
        Assert.Equal(200, status);
        var ids = body!["tokens"]!.AsArray().Select(id => id!.GetValue<int>()).ToArray();
        var (_, text) = await server.PostAsync("/detokenize", new { model = RunningServer.Model, tokens = ids });
        return text!["prompt"]!.GetValue<string>();
    }

    [Fact]
    public async Task AnInlineTemplateAndDefaultVariablesRenderEveryChat()
    {
        await using var server = await RunningServer.StartAsync(["--chat-template", Template,
            "--default-chat-template-kwargs", """{"enable_thinking": false}"""]);
        Assert.Equal("[user] Hi\n[assistant] (no thinking)", await RenderedAsync(server));
        // the request's variables win over the defaults
        Assert.Equal("[user] Hi\n[assistant]", await RenderedAsync(server, new { enable_thinking = true }));
        // a chat completion and a gRPC chat render the same prompt
        var (_, chat) = await server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 1,
        });
        var tokenized = await server.PostAsync("/tokenize", new { model = RunningServer.Model, prompt = "[user] Hi\n[assistant] (no thinking)" });
        Assert.Equal(tokenized.Body!["count"]!.GetValue<int>(), chat!["usage"]!["prompt_tokens"]!.GetValue<int>());
        var grpc = await server.Grpc().TokenizeAsync(new TokenizeRequest
        {
            Model = RunningServer.Model, Chat = new ChatInput { Messages = { new ChatMessage { Role = "user", Content = "Hi" } } },
        });
        Assert.Equal(tokenized.Body!["tokens"]!.AsArray().Select(t => t!.GetValue<int>()), grpc.TokenIds);
        // a gRPC chat's own variables win over the defaults too
        var thinking = await server.Grpc().TokenizeAsync(new TokenizeRequest
        {
            Model = RunningServer.Model,
            Chat = new ChatInput
            {
                Messages = { new ChatMessage { Role = "user", Content = "Hi" } },
                ChatTemplateKwargs = Google.Protobuf.WellKnownTypes.Struct.Parser.ParseJson("""{"enable_thinking": true}"""),
            },
        });
        var plain = await server.PostAsync("/tokenize", new { model = RunningServer.Model, prompt = "[user] Hi\n[assistant]" });
        Assert.Equal(plain.Body!["tokens"]!.AsArray().Select(t => t!.GetValue<int>()), thinking.TokenIds);
    }

    [Fact]
    public async Task ATemplateFileIsRead()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, Template);
            await using var server = await RunningServer.StartAsync(["--chat-template", file]);
            Assert.Equal("[user] Hi\n[assistant]", await RenderedAsync(server));
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// auto: a template that loops over the parts gets parts, from a string content too, over HTTP and gRPC; one that
    /// writes the content gets the parts' texts joined by newlines; string forces strings on every template.
    [Fact]
    public async Task EachTemplateGetsTheContentInTheFormItReads()
    {
        var parts = new[] { new { type = "text", text = "Hi" }, new { type = "text", text = "there" } };
        await using (var server = await RunningServer.StartAsync(["--chat-template", PartsTemplate]))
        {
            Assert.Equal("[user] Hi\n[assistant]", await RenderedAsync(server));
            Assert.Equal("[user] Hi there\n[assistant]", await RenderedAsync(server, content: parts));
            var grpc = await server.Grpc().TokenizeAsync(new TokenizeRequest
            {
                Model = RunningServer.Model, Chat = new ChatInput { Messages = { new ChatMessage { Role = "user", Content = "Hi" } } },
            });
            var (_, text) = await server.PostAsync("/detokenize", new { model = RunningServer.Model, tokens = grpc.TokenIds });
            Assert.Equal("[user] Hi\n[assistant]", text!["prompt"]!.GetValue<string>());
        }
        await using (var server = await RunningServer.StartAsync(["--chat-template", Template]))
            Assert.Equal("[user] Hi\nthere\n[assistant]", await RenderedAsync(server, content: parts));
        await using (var server = await RunningServer.StartAsync(["--chat-template", PartsTemplate, "--chat-template-content-format", "string"]))
            Assert.Equal("[user]\n[assistant]", await RenderedAsync(server, content: parts));   // the characters of "Hi\nthere": no part is text
    }

    [Fact]
    public void BadValuesAreStartUpErrorsNamingTheFlag()
    {
        IReadOnlyList<string> Errors(params string[] flags) => ServerCommandLineTests.Bind(ServerCommandLine.ToConfiguration(flags)).Validate();
        Assert.Contains("chat-template '/no/such/template.jinja' looks like a file path, but no such file exists",
            Errors("--chat-template", "/no/such/template.jinja"));
        Assert.Contains(Errors("--chat-template", "{% if %}"), e => e.StartsWith("chat-template does not parse", StringComparison.Ordinal));
        Assert.Contains("default-chat-template-kwargs must be a JSON object (got [1])", Errors("--default-chat-template-kwargs", "[1]"));
        Assert.Contains(Errors("--default-chat-template-kwargs", "{"), e => e.StartsWith("default-chat-template-kwargs is not JSON", StringComparison.Ordinal));
        Assert.Contains("chat-template-content-format must be one of auto, string, openai (got 'images')",
            Errors("--chat-template-content-format", "images"));
        Assert.Empty(Errors("--chat-template", Template, "--default-chat-template-kwargs", """{"enable_thinking": false}""",
            "--chat-template-content-format", "openai"));
    }
}
