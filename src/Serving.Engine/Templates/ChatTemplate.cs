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
    }

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
}
