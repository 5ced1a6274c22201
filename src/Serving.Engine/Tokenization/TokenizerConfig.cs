using System.Text.Json;

namespace Serving.Engine.Tokenization;

/// What tokenizer_config.json says beside the tokenizer file itself. Every field is optional.
internal sealed record TokenizerConfig(
    string? BosToken,
    string? EosToken,
    bool? AddBosToken,
    bool? AddEosToken,
    string? ChatTemplate,
    IReadOnlyList<AddedToken> AddedTokens)
{
    public static readonly TokenizerConfig Empty = new(null, null, null, null, null, []);

    public static TokenizerConfig Load(string modelDir)
    {
        var path = Path.Combine(modelDir, "tokenizer_config.json");
        var config = File.Exists(path) ? Parse(File.ReadAllText(path)) : Empty;
        // transformers 4.43+ may save the template beside the config instead of inside it; a multimodal checkpoint's
        // processor saves it in chat_template.json
        var templatePath = Path.Combine(modelDir, "chat_template.jinja");
        if (config.ChatTemplate is null && File.Exists(templatePath))
            config = config with { ChatTemplate = File.ReadAllText(templatePath) };
        var processorTemplatePath = Path.Combine(modelDir, "chat_template.json");
        if (config.ChatTemplate is null && File.Exists(processorTemplatePath))
        {
            using var processor = JsonDocument.Parse(File.ReadAllText(processorTemplatePath));
            config = config with { ChatTemplate = ChatTemplateOf(processor.RootElement) };
        }
        return config;
    }

    public static TokenizerConfig Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        return new TokenizerConfig(
            SpecialTokenContent(root, "bos_token"),
            SpecialTokenContent(root, "eos_token"),
            OptionalBool(root, "add_bos_token"),
            OptionalBool(root, "add_eos_token"),
            ChatTemplateOf(root),
            AddedTokensDecoder(root));
    }

    /// A special token is written either as its text or as a serialized AddedToken {"content": ...}.
    static string? SpecialTokenContent(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value)) return null;
        return value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Object when value.TryGetProperty("content", out var content) => content.GetString(),
            _ => null,
        };
    }

    static bool? OptionalBool(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean()
            : null;

    /// "chat_template" is a string, or a list of {name, template} of which "default" is the chat template.
    static string? ChatTemplateOf(JsonElement root)
    {
        if (!root.TryGetProperty("chat_template", out var value)) return null;
        if (value.ValueKind == JsonValueKind.String) return value.GetString();
        if (value.ValueKind != JsonValueKind.Array) return null;
        foreach (var entry in value.EnumerateArray())
        {
            if (entry.TryGetProperty("name", out var name) && name.GetString() == "default")
                return entry.GetProperty("template").GetString();
        }
        return null;
    }

    /// "added_tokens_decoder": {"32000": {"content": "<|im_start|>", "special": true, ...}}.
    static IReadOnlyList<AddedToken> AddedTokensDecoder(JsonElement root)
    {
        if (!root.TryGetProperty("added_tokens_decoder", out var decoder) || decoder.ValueKind != JsonValueKind.Object)
            return [];
        return decoder.EnumerateObject()
            .Select(entry => AddedToken.FromJson(entry.Value, int.Parse(entry.Name, System.Globalization.CultureInfo.InvariantCulture)))
            .ToList();
    }
}
