using System.Text.Json.Nodes;
using Serving.Server.Options;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI.Tools;

/// A multi-turn conversation with tools, an assistant tool call and a tool result, sent in OpenAI's shapes
/// (arguments as a JSON string), renders through the real Llama 3.1 and Qwen2.5 templates exactly as jinja2
/// renders the same conversation (the engine tests' golden data, made by transformers' environment), or is
/// refused with the template's own message where jinja2 raised.
public sealed class ToolTemplateTests
{
    static readonly string DataDir = Path.Combine(AppContext.BaseDirectory, "Templates");

    [Theory]
    [InlineData("llama-3.1-8b-instruct", "tool_call_and_result")]
    [InlineData("llama-3.1-8b-instruct", "two_tool_calls")]
    [InlineData("qwen2.5-7b-instruct", "tool_call_and_result")]
    [InlineData("qwen2.5-7b-instruct", "two_tool_calls")]
    [InlineData("qwen2.5-7b-instruct", "tools_prompt")]
    public async Task ToolConversationsRenderAsJinja2RendersThem(string template, string caseName)
    {
        var golden = JsonNode.Parse(File.ReadAllText(Path.Combine(DataDir, $"{template}.golden.json")))!.AsObject();
        var chat = golden["cases"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == caseName)!.AsObject();
        using var model = ModelWithTemplate(File.ReadAllText(Path.Combine(DataDir, $"{template}.jinja")),
            golden["bos_token"]?.GetValue<string>(), golden["eos_token"]!.GetValue<string>());
        await using var server = await RunningServer.StartAsync(["--model", model.Path], model: null);

        var context = chat["extra_context"]!.AsObject();
        var body = new JsonObject
        {
            ["messages"] = OpenAIShaped(chat["messages"]!.AsArray()),
            ["tools"] = context["tools"]?.DeepClone(),
            ["chat_template_kwargs"] = new JsonObject(context.Where(p => p.Key != "tools").Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone()))),
            ["add_generation_prompt"] = chat["add_generation_prompt"]!.GetValue<bool>(),
        };
        var (status, tokenized) = await server.PostAsync("/tokenize", body.ToJsonString());
        if (chat["error"] is { } refusal)
        {
            // the template itself refuses (Llama 3.1 takes one tool call per message): a 400 with its words
            Assert.Equal(400, status);
            Assert.Contains(refusal.GetValue<string>(), tokenized!["error"]!["message"]!.GetValue<string>());
            return;
        }
        Assert.Equal(200, status);
        var (_, text) = await server.PostAsync("/detokenize", new JsonObject { ["tokens"] = tokenized!["tokens"]!.DeepClone() }.ToJsonString());
        Assert.Equal(chat["rendered"]!.GetValue<string>(), text!["prompt"]!.GetValue<string>());
    }

    /// The golden conversations give arguments as objects (as transformers takes them); OpenAI clients send
    /// them as JSON text, which the server parses back for the template.
    static JsonArray OpenAIShaped(JsonArray messages)
    {
        var copy = messages.DeepClone().AsArray();
        foreach (var call in copy.SelectMany(m => m!["tool_calls"]?.AsArray() ?? []))
        {
            var function = call!["function"]!.AsObject();
            function["arguments"] = function["arguments"]!.ToJsonString();
        }
        return copy;
    }

    /// The embedded model (a byte-level tokenizer that round-trips any text) with another chat template.
    static TempDirectory ModelWithTemplate(string template, string? bos, string eos)
    {
        var dir = new TempDirectory();
        foreach (var file in Directory.GetFiles(ServerOptions.DefaultModelDir))
            File.Copy(file, dir.File(Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(dir.File("tokenizer_config.json")))!.AsObject();
        (config["chat_template"], config["bos_token"], config["eos_token"]) = (template, bos, eos);
        File.WriteAllText(dir.File("tokenizer_config.json"), config.ToJsonString());
        return dir;
    }
}
