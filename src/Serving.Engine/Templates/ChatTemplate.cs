using System.Text.Json.Nodes;
using Serving.Engine.Templates.Jinja;

namespace Serving.Engine.Templates;

/// A Hugging Face chat template (the Jinja2 "chat_template" of tokenizer_config.json), parsed once and
/// rendered per request in a sandbox: values are plain JSON-like data, output size, loop iterations and
/// macro depth are bounded. Renders as transformers' apply_chat_template does (jinja2 with trim_blocks and
/// lstrip_blocks, tojson without ASCII escaping, raise_exception and strftime_now available).
public sealed class ChatTemplate
{
    /// Variables extra context may not set: the request defines them (the checked conversation, the
    /// generation prompt switch, the tokenizer's specials). The built-in functions cannot be shadowed either.
    static readonly HashSet<string> Reserved = ["messages", "add_generation_prompt", "bos_token", "eos_token"];

    readonly IReadOnlyList<Node> _template;
    readonly RenderLimits _limits = RenderLimits.Default;

    /// Parses `source`; throws TemplateException (with the line) when it is not valid template syntax.
    public ChatTemplate(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        _template = Parser.Parse(source);
        ContentFormat = ChatContentFormats.Detect(_template);
    }

    /// How this template reads a message's content, from its syntax (OpenAI where it loops over it).
    public ChatContentFormat ContentFormat { get; }

    /// Renders a conversation. `messages` is the OpenAI-style array of {role, content, ...}, passed through
    /// as-is (content may be a string or a list of parts; the template decides). A null bos/eos token is left
    /// undefined, as transformers does for a tokenizer without one. `extraContext` adds variables (tools,
    /// documents, date_string, enable_thinking, ...); `tools` and `documents` default to none as in
    /// transformers; a name in Reserved or a built-in function is dropped, as vLLM drops chat_template_kwargs
    /// it does not accept. Throws TemplateException for raise_exception (Message is the template's text), runtime
    /// errors (with the line) and sandbox limits.
    public string Render(JsonArray messages, bool addGenerationPrompt, string? bosToken, string? eosToken,
        JsonObject? extraContext = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var globals = Globals.CreateScope(_limits, () => DateTime.Now);
        var context = new Scope(globals);
        context.Set("messages", JsonValues.From(messages));
        context.Set("tools", NoneValue.Instance);
        context.Set("documents", NoneValue.Instance);
        context.Set("add_generation_prompt", BoolValue.Of(addGenerationPrompt));
        if (bosToken is not null) context.Set("bos_token", new StringValue(bosToken));
        if (eosToken is not null) context.Set("eos_token", new StringValue(eosToken));
        if (extraContext is not null)
            foreach (var (name, value) in extraContext)
                if (!Reserved.Contains(name) && globals.Lookup(name) is UndefinedValue)
                    context.Set(name, JsonValues.From(value));
        return Evaluator.Render(_template, context, _limits);
    }

    /// transformers' continue_final_message: a rendered chat cut right after the final message's text, so that the model
    /// continues that message (a "prefill" of its answer) instead of starting a new one. The text is the content, or
    /// the last text part of a list of parts; it is found from the end, stripped of white space, and kept with its
    /// trailing white space when the template kept it. Throws TemplateException when the final message has no text
    /// or the template did not write it.
    public static string OpenFinalMessage(string rendered, JsonArray messages)
    {
        var final = FinalText(messages)
            ?? throw TemplateException.Runtime("continue_final_message is set but the final message has no text to continue");
        var (stripped, leftStripped) = (final.Trim(), final.TrimStart());
        var at = stripped.Length == 0 ? rendered.Length : rendered.LastIndexOf(stripped, StringComparison.Ordinal);
        if (at < 0)
            throw TemplateException.Runtime("continue_final_message is set but the chat template does not write the final message's text");
        var kept = rendered.Substring(at, Math.Min(leftStripped.Length, rendered.Length - at));
        return rendered[..(at + (kept == final ? leftStripped.Length : stripped.Length))];
    }

    static string? FinalText(JsonArray messages) => messages.LastOrDefault()?["content"] switch
    {
        JsonValue value when value.TryGetValue(out string? text) => text,
        JsonArray parts => parts.Reverse().Select(part => part is JsonObject fields ? fields["text"] : part).OfType<JsonValue>()
            .Select(text => text.TryGetValue(out string? s) ? s : null).FirstOrDefault(s => s is not null),
        _ => null,
    };
}
