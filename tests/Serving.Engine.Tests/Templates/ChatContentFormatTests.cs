using System.Text.Json.Nodes;
using Serving.Engine.Templates;
using Serving.Engine.Tests.Tokenization;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Templates;

/// --chat-template-content-format: a template that loops over a message's content is given lists of text parts, one
/// that writes it is given strings (auto, as vLLM detects it from the template's syntax), and the flag's string or
/// openai overrides that for every template.
public sealed class ChatContentFormatTests
{
    static readonly string DataDir = Path.Combine(AppContext.BaseDirectory, "Templates", "Data");

    // a multimodal release's shape: the parts of each message, their texts written (trim_blocks eats the newline after
    // the inner endfor)
    const string PartsTemplate =
        "{% for message in messages %}[{{ message.role }}]{% for part in message['content'] %}{% if part.type == 'text' %} " +
        "{{ part.text }}{% endif %}{% endfor %}\n{% endfor %}";
    const string StringTemplate = "{% for message in messages %}[{{ message.role }}] {{ message.content }}\n{% endfor %}";

    [Theory]
    [InlineData(StringTemplate, ChatContentFormat.String)]
    [InlineData(PartsTemplate, ChatContentFormat.OpenAI)]
    // through a name set from the messages, and a content that may be either
    [InlineData("{% set loop_messages = messages[1:] %}{% for m in loop_messages %}{% if m.content is string %}{{ m.content }}" +
        "{% else %}{% for c in m.content %}{{ c.text }}{% endfor %}{% endif %}{% endfor %}", ChatContentFormat.OpenAI)]
    // through a name set from a message's content, filtered
    [InlineData("{% for message in messages|reverse %}{% set content = message['content'] %}{% for c in content|list %}{{ c.text }}" +
        "{% endfor %}{% endfor %}", ChatContentFormat.OpenAI)]
    // inside a macro and an if
    [InlineData("{% macro render(m) %}{{ m }}{% endmacro %}{% if messages %}{% for message in messages %}{% for c in message.content %}" +
        "{{ render(c.text) }}{% endfor %}{% endfor %}{% endif %}", ChatContentFormat.OpenAI)]
    // a macro's parameter named content, looped over (vLLM's fallback)
    [InlineData("{% macro render_content(content) %}{% if content is string %}{{ content }}{% else %}{% for item in content %}" +
        "{{ item.text }}{% endfor %}{% endif %}{% endmacro %}{% for message in messages %}{{ render_content(message.content) }}{% endfor %}",
        ChatContentFormat.OpenAI)]
    // a content that is only written or split, and a loop over the content of something not a message
    [InlineData("{% for message in messages %}{% set content = message.content %}{{ content.split('x')[0] }}{% endfor %}", ChatContentFormat.String)]
    [InlineData("{% for tool in tools %}{% for c in tool['content'] %}{{ c }}{% endfor %}{% endfor %}{% for m in messages %}{{ m.content }}{% endfor %}",
        ChatContentFormat.String)]
    public void TheFormatIsReadFromTheTemplatesSyntax(string source, ChatContentFormat expected) =>
        Assert.Equal(expected, new ChatTemplate(source).ContentFormat);

    /// Llama 3.1 and 3.2, Mistral v0.3 and Nemo, Qwen2.5 and Qwen3, Phi-3.5, TinyLlama and ChatML write the content
    /// as a string (Mistral and Qwen3 set a name from it without looping over it), and so do the fixtures' templates.
    [Fact]
    public void TheReleasedTextTemplatesReadStrings()
    {
        foreach (var file in Directory.GetFiles(DataDir, "*.jinja"))
            Assert.True(new ChatTemplate(File.ReadAllText(file)).ContentFormat == ChatContentFormat.String, Path.GetFileName(file));
        foreach (var model in Fixtures.Models)
            Assert.Equal(ChatContentFormat.String, new PromptProcessor(TokenizerFixtureTests.Tokenizer(model), maxModelLen: 256).ContentFormat);
    }

    /// Through the prompt processor: a string content and a list of parts reach each template in the form it reads, and
    /// the flag's format is given to every template (a parts template given a string iterates its characters, whose
    /// type is undefined: the text is lost, which is why auto reads the template).
    [Fact]
    public void MessagesReachATemplateInTheFormItReads()
    {
        var tokenizer = TokenizerFixtureTests.Tokenizer(Fixtures.Models[0]);
        var stringContent = Messages(JsonValue.Create("Hi")!);
        var parts = Messages(new JsonArray(Part("Hi"), Part("there")));
        var absent = Messages(null);

        var auto = new PromptProcessor(tokenizer, 256, PartsTemplate);
        Assert.Equal(ChatContentFormat.OpenAI, auto.ContentFormat);
        Assert.Equal("[user] Hi", auto.ApplyChatTemplate(stringContent, false));
        Assert.Equal("[user] Hi there", auto.ApplyChatTemplate(parts, false));
        Assert.Equal("[user]", auto.ApplyChatTemplate(absent, false));

        var strings = new PromptProcessor(tokenizer, 256, StringTemplate);
        Assert.Equal("[user] Hi\nthere\n", strings.ApplyChatTemplate(parts, false));
        Assert.Equal("[user] Hi\nthere\n", strings.ApplyChatTemplate(Messages(new JsonArray(Part("Hi"), JsonValue.Create("there"))), false));   // a bare string part is a text
        Assert.Equal("[user] \n", strings.ApplyChatTemplate(absent, false));

        Assert.Equal("[user]", new PromptProcessor(tokenizer, 256, PartsTemplate, contentFormat: ChatContentFormat.String).ApplyChatTemplate(stringContent, false));
        Assert.Equal("[user] [{'type': 'text', 'text': 'Hi'}]\n",   // a list of parts printed as Python prints it
            new PromptProcessor(tokenizer, 256, StringTemplate, contentFormat: ChatContentFormat.OpenAI).ApplyChatTemplate(stringContent, false));
        // the caller's messages are left as they were
        Assert.Equal("Hi", stringContent[0]!["content"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("auto", null)]
    [InlineData("string", ChatContentFormat.String)]
    [InlineData("OpenAI", ChatContentFormat.OpenAI)]
    public void TheFlagsValuesParse(string value, ChatContentFormat? expected) => Assert.Equal(expected, ChatContentFormats.Parse(value));

    [Fact]
    public void AnotherValueIsRefusedNamingTheFlag() =>
        Assert.Equal("chat-template-content-format must be one of auto, string, openai (got 'images')",
            Assert.Throws<ArgumentException>(() => ChatContentFormats.Parse("images")).Message);

    static JsonArray Messages(JsonNode? content) => new(new JsonObject { ["role"] = "user", ["content"] = content });

    static JsonObject Part(string text) => new() { ["type"] = "text", ["text"] = text };
}
