using System.Text.Json.Nodes;
using Serving.Engine.Templates;

namespace Serving.Engine.Tokenization;

/// The servers' view of the model's tokenizer and chat template (IPromptProcessor). Thread-safe: both are
/// immutable after loading.
internal sealed class PromptProcessor : IPromptProcessor
{
    readonly TextTokenizer _tokenizer;
    readonly ChatTemplate? _chatTemplate;
    readonly JsonObject _defaultKwargs;
    readonly ChatContentFormat? _contentFormat;
    readonly int _maxModelLen;

    /// maxModelLen: the context; a text that cannot fit in it is refused before it is tokenized. chatTemplate replaces
    /// the tokenizer's template (--chat-template); defaultKwargs are template variables every chat gets unless its
    /// request sets them (--default-chat-template-kwargs); contentFormat: how every template is given a message's
    /// content (--chat-template-content-format), null for each template's own (ChatTemplate.ContentFormat).
    public PromptProcessor(TextTokenizer tokenizer, int maxModelLen, string? chatTemplate = null, JsonObject? defaultKwargs = null,
        ChatContentFormat? contentFormat = null)
    {
        _tokenizer = tokenizer;
        _chatTemplate = (chatTemplate ?? tokenizer.ChatTemplate) is { } source ? new ChatTemplate(source) : null;
        _defaultKwargs = defaultKwargs ?? [];
        _contentFormat = contentFormat;
        _maxModelLen = maxModelLen;
        MaxTextLength = (long)maxModelLen * tokenizer.MaxTokenLength;
    }

    public int VocabSize => _tokenizer.VocabSize;

    public long MaxTextLength { get; }

    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true)
    {
        CheckTextLength(text.Length);
        return _tokenizer.Encode(text, addSpecialTokens);
    }

    public IReadOnlyList<int> EncodeAnyLength(string text, bool addSpecialTokens) => _tokenizer.Encode(text, addSpecialTokens);

    /// No token spells more than MaxTokenLength characters, so a longer text needs more tokens than the context
    /// holds: refused at once, instead of seconds of tokenizing and a burst of memory.
    public void CheckTextLength(long length)
    {
        if (length > MaxTextLength)
            throw new InvalidRequestException(
                $"This model's maximum context length is {_maxModelLen} tokens and none of its tokens is longer than " +
                $"{_tokenizer.MaxTokenLength} characters, so a text of {length} characters cannot fit.", "prompt")
            { ExceedsContext = true };
    }

    public string Decode(IReadOnlyList<int> tokenIds, bool skipSpecialTokens = false) =>
        _tokenizer.Decode(tokenIds, skipSpecialTokens);

    public string TokenText(int tokenId) => _tokenizer.TokenText(tokenId);

    /// How the model's template is given a message's content (the flag's format, else the template's own); null
    /// without a template.
    public ChatContentFormat? ContentFormat => _chatTemplate is null ? null : _contentFormat ?? _chatTemplate.ContentFormat;

    public string ApplyChatTemplate(JsonArray messages, bool addGenerationPrompt, JsonObject? extraContext = null,
        string? chatTemplate = null, bool continueFinalMessage = false)
    {
        var template = chatTemplate is null ? _chatTemplate : Parse(chatTemplate);
        if (template is null)
            throw new InvalidRequestException(
                "this model has no chat template (tokenizer_config.json has no chat_template); start the server with " +
                "--chat-template, or use /v1/completions", "messages");
        messages = ChatContentFormats.Apply(messages, _contentFormat ?? template.ContentFormat);
        try
        {
            var rendered = template.Render(messages, addGenerationPrompt, _tokenizer.BosToken, _tokenizer.EosToken, WithDefaults(extraContext));
            return continueFinalMessage ? ChatTemplate.OpenFinalMessage(rendered, messages) : rendered;
        }
        catch (TemplateException error)
        {
            throw new InvalidRequestException($"the chat template rejected the conversation: {error.Message}", "messages");
        }
    }

    // the request's variables over the defaults
    JsonObject? WithDefaults(JsonObject? extraContext)
    {
        if (_defaultKwargs.Count == 0) return extraContext;
        var context = (JsonObject)_defaultKwargs.DeepClone();
        foreach (var (name, value) in extraContext ?? []) context[name] = value?.DeepClone();
        return context;
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
