using System.Text.Json;
using Serving.Engine.Tests.Tokenization;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Templates;

/// Every chat case of the reference fixtures renders exactly what transformers rendered, through the template
/// and special tokens the engine loads from tokenizer_config.json.
public sealed class ChatTemplateFixtureTests
{
    public static TheoryData<string> Models => new(Fixtures.Models);

    [Theory]
    [MemberData(nameof(Models))]
    public void RendersEveryFixtureChatCase(string model)
    {
        var prompts = new PromptProcessor(TokenizerFixtureTests.Tokenizer(model), maxModelLen: 256);
        var cases = Fixtures.Reference(model).Chat ?? throw new InvalidOperationException($"{model} has no chat cases");
        Assert.NotEmpty(cases);
        foreach (var chat in cases)
        {
            var messages = JsonSerializer.SerializeToNode(chat.Messages.Select(m => new { role = m.Role, content = m.Content }))!.AsArray();
            var rendered = prompts.ApplyChatTemplate(messages, chat.AddGenerationPrompt);
            Assert.Equal(chat.Rendered, rendered);
        }
    }
}
