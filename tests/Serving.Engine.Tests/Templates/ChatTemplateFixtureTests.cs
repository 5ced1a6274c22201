using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Engine.Templates;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Templates;

/// Every chat case of the reference fixtures renders exactly what transformers rendered.
public sealed class ChatTemplateFixtureTests
{
    public static TheoryData<string> Models => new(Fixtures.Models);

    [Theory]
    [MemberData(nameof(Models))]
    public void RendersEveryFixtureChatCase(string model)
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Dir(model), "tokenizer_config.json")))!.AsObject();
        var template = new ChatTemplate(config["chat_template"]!.GetValue<string>());
        var cases = Fixtures.Reference(model).Chat ?? throw new InvalidOperationException($"{model} has no chat cases");
        Assert.NotEmpty(cases);
        foreach (var chat in cases)
        {
            var messages = JsonSerializer.SerializeToNode(chat.Messages.Select(m => new { role = m.Role, content = m.Content }))!.AsArray();
            var rendered = template.Render(messages, chat.AddGenerationPrompt, TokenText(config["bos_token"]), TokenText(config["eos_token"]));
            Assert.Equal(chat.Rendered, rendered);
        }
    }

    /// A special token in tokenizer_config.json is a string, an AddedToken object with "content", or null.
    static string? TokenText(JsonNode? token) => token switch
    {
        null => null,
        JsonObject added => added["content"]?.GetValue<string>(),
        _ => token.GetValue<string>(),
    };
}
