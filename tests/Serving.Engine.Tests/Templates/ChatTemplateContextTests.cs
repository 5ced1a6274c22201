using System.Text.Json.Nodes;
using Serving.Engine.Templates;

namespace Serving.Engine.Tests.Templates;

/// Extra context (a request's chat_template_kwargs) adds variables, but cannot replace what the request itself
/// defines nor the template's built-in functions: such names are dropped, as vLLM drops them.
public sealed class ChatTemplateContextTests
{
    const string Source = "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}" +
        "{% if add_generation_prompt %}>{% endif %}{{ extra }}{{ range(2) | length }}";

    static JsonArray Messages() => [new JsonObject { ["role"] = "user", ["content"] = "hi" }];

    [Fact]
    public void ReservedNamesAndBuiltinsInExtraContextAreDroppedAndOthersKept()
    {
        var template = new ChatTemplate(Source);
        var extra = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "wizard", ["content"] = "x" }),
            ["add_generation_prompt"] = false,
            ["bos_token"] = "EVIL",
            ["range"] = 5,
            ["extra"] = "!",
        };
        Assert.Equal("<s>[user:hi]>!2", template.Render(Messages(), addGenerationPrompt: true, "<s>", "</s>", extra));
    }

    [Fact]
    public void ToolsAndDocumentsMayStillBeGivenAsExtraContext()
    {
        var template = new ChatTemplate("{{ tools | length }}/{{ documents | length }}");
        var extra = new JsonObject { ["tools"] = new JsonArray(1, 2), ["documents"] = new JsonArray(3) };
        Assert.Equal("2/1", template.Render(Messages(), true, null, null, extra));
    }
}
