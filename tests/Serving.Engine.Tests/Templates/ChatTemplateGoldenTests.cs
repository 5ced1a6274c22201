using System.Text.Json.Nodes;
using Serving.Engine.Templates;

namespace Serving.Engine.Tests.Templates;

/// The real chat templates of Llama 3.1 and 3.2, Mistral v0.3 and Nemo, Qwen2.5 and Qwen3 (thinking in history,
/// reasoning_content, enable_thinking), Phi-3.5, TinyLlama, ChatML, MiniCPM3 (macros, call blocks), functionary
/// (tools), OpenChat and a Falcon chat (loop.previtem) render what jinja2 renders
/// (Data/*.golden.json, made by Data/render_golden.py), including raise_exception refusals.
public sealed class ChatTemplateGoldenTests
{
    static readonly string DataDir = Path.Combine(AppContext.BaseDirectory, "Templates", "Data");

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var file in Directory.GetFiles(DataDir, "*.golden.json").Order(StringComparer.Ordinal))
            foreach (var golden in LoadGolden(file)["cases"]!.AsArray())
                data.Add(Path.GetFileName(file), golden!["name"]!.GetValue<string>());
        return data;
    }

    [Fact]
    public void EveryTemplateHasGoldenCases()
    {
        var templates = Directory.GetFiles(DataDir, "*.jinja").Select(f => Path.GetFileNameWithoutExtension(f)).Order().ToList();
        var goldens = Directory.GetFiles(DataDir, "*.golden.json").Select(f => Path.GetFileName(f).Replace(".golden.json", "")).Order().ToList();
        Assert.Equal(13, templates.Count);
        Assert.Equal(templates, goldens);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RendersLikeJinja2(string goldenFile, string caseName)
    {
        var golden = LoadGolden(Path.Combine(DataDir, goldenFile));
        var template = new ChatTemplate(File.ReadAllText(Path.Combine(DataDir, golden["template"]!.GetValue<string>())));
        var chat = golden["cases"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == caseName)!;
        // continue_final_message is apply_chat_template's, not the template's: the text is cut after rendering
        var context = chat["extra_context"]!.DeepClone().AsObject();
        var continueFinalMessage = context.Remove("continue_final_message", out var flag) && flag!.GetValue<bool>();
        string Render()
        {
            var messages = chat["messages"]!.AsArray();
            var text = template.Render(messages, chat["add_generation_prompt"]!.GetValue<bool>(),
                golden["bos_token"]?.GetValue<string>(), golden["eos_token"]?.GetValue<string>(), context);
            return continueFinalMessage ? ChatTemplate.OpenFinalMessage(text, messages) : text;
        }

        if (chat["rendered"] is { } expected)
        {
            Assert.Equal(expected.GetValue<string>(), Render());
            return;
        }
        var error = Assert.Throws<TemplateException>(Render);
        var raisedByTemplate = chat["raised_by_template"]!.GetValue<bool>();
        Assert.Equal(raisedByTemplate, error.RaisedByTemplate);
        if (raisedByTemplate) Assert.Equal(chat["error"]!.GetValue<string>(), error.Message);
    }

    static JsonObject LoadGolden(string path) => JsonNode.Parse(File.ReadAllText(path))!.AsObject();
}
