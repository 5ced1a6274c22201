using System.Text.Json.Nodes;
using Serving.Grpc.V1;
using Serving.Server.Options;
using Serving.Server.Tests.Options;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// --chat-template (a file, or the template itself) replaces the model's template for every chat, HTTP and gRPC
/// alike; --default-chat-template-kwargs gives every chat variables its request may override.
public sealed class ChatTemplateFlagTests
{
    const string Template =
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]" +
        "{% if enable_thinking is defined and enable_thinking is false %} (no thinking){% endif %}{% endif %}";

    static async Task<string> RenderedAsync(RunningServer server, object? kwargs = null)
    {
        var (status, body) = await server.PostAsync("/tokenize", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hi" } }, chat_template_kwargs = kwargs,
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

    [Fact]
    public void BadValuesAreStartUpErrorsNamingTheFlag()
    {
        IReadOnlyList<string> Errors(params string[] flags) => ServerCommandLineTests.Bind(ServerCommandLine.ToConfiguration(flags)).Validate();
        Assert.Contains("chat-template '/no/such/template.jinja' looks like a file path, but no such file exists",
            Errors("--chat-template", "/no/such/template.jinja"));
        Assert.Contains(Errors("--chat-template", "{% if %}"), e => e.StartsWith("chat-template does not parse", StringComparison.Ordinal));
        Assert.Contains("default-chat-template-kwargs must be a JSON object (got [1])", Errors("--default-chat-template-kwargs", "[1]"));
        Assert.Contains(Errors("--default-chat-template-kwargs", "{"), e => e.StartsWith("default-chat-template-kwargs is not JSON", StringComparison.Ordinal));
        Assert.Empty(Errors("--chat-template", Template, "--default-chat-template-kwargs", """{"enable_thinking": false}"""));
    }
}
