using System.Text.Json.Nodes;
using Serving.Engine.Templates;

namespace Serving.Engine.Tokenization;

/// The servers' view of the model's tokenizer and chat template (IPromptProcessor). Thread-safe: both are
/// immutable after loading.
internal sealed class PromptProcessor : IPromptProcessor
{
    readonly TextTokenizer _tokenizer;
    readonly ChatTemplate? _chatTemplate;

    public PromptProcessor(TextTokenizer tokenizer)
    {
        _tokenizer = tokenizer;
        _chatTemplate = tokenizer.ChatTemplate is { } source ? new ChatTemplate(source) : null;
    }

    public int VocabSize => _tokenizer.VocabSize;

    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true) => _tokenizer.Encode(text, addSpecialTokens);

    public string Decode(IReadOnlyList<int> tokenIds, bool skipSpecialTokens = false) =>
        _tokenizer.Decode(tokenIds, skipSpecialTokens);

    public string TokenText(int tokenId) => _tokenizer.TokenText(tokenId);

    public string ApplyChatTemplate(JsonArray messages, bool addGenerationPrompt, JsonObject? extraContext = null,
        string? chatTemplate = null)
    {
        var template = chatTemplate is null ? _chatTemplate : Parse(chatTemplate);
        if (template is null)
            throw new InvalidRequestException(
                "this model has no chat template (tokenizer_config.json has no chat_template); use /v1/completions", "messages");
        try
        {
            return template.Render(messages, addGenerationPrompt, _tokenizer.BosToken, _tokenizer.EosToken, extraContext);
        }
        catch (TemplateException error)
        {
            throw new InvalidRequestException($"the chat template rejected the conversation: {error.Message}", "messages");
        }
    }

    static ChatTemplate Parse(string source)
    {
        try
        {
            return new ChatTemplate(source);
        }
        catch (TemplateException error)
        {
            throw new InvalidRequestException($"the chat template does not parse: {error.Message}", "chat_template");
        }
    }
}
