using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Server.Errors;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI;

/// The conversation of a chat or /tokenize request rendered by the chat template: "messages" checked and
/// normalized, "chat_template_kwargs" checked (the engine drops the names a request may not set), the request's
/// tools as the template's "tools" (over any in the kwargs), and a request's own "chat_template" used only under
/// --trust-request-chat-template (vLLM's flag), else refused.
internal static class ChatPrompt
{
    /// addGenerationPrompt (default true) and continueFinalMessage (transformers' and vLLM's prefill of the answer):
    /// continuing the final message leaves the generation prompt out unless asked for; both at once are refused.
    /// guardLength false (a truncated prompt): a message too long for the context is not refused from its length.
    /// reasoningEffort: the template's reasoning_effort, unless the kwargs give one.
    public static string Render(ServingContext serving, JsonElement? messages, bool? addGenerationPrompt, bool? continueFinalMessage,
        JsonElement? kwargs, string? chatTemplate, JsonArray? templateTools = null, bool guardLength = true, string? reasoningEffort = null)
    {
        var continuing = continueFinalMessage == true;
        Check.That(!(continuing && addGenerationPrompt == true), "continue_final_message",
            "continue_final_message and add_generation_prompt cannot both be true.");
        var normalized = ChatMessages.Normalize(messages, guardLength ? serving.Prompts : null, serving.Options.ResponseRole);
        Check.That(chatTemplate is null || serving.Options.TrustRequestChatTemplate, "chat_template",
            "A chat_template in the request is refused: the server renders with the model's template " +
            "(start it with --trust-request-chat-template to allow one).");
        var context = Kwargs(kwargs);
        if (templateTools is not null) context["tools"] = templateTools;
        if (reasoningEffort is not null && !context.ContainsKey("reasoning_effort")) context["reasoning_effort"] = reasoningEffort;
        return serving.Prompts.ApplyChatTemplate(normalized, addGenerationPrompt ?? !continuing, context, chatTemplate, continuing);
    }

    /// OpenAI's reasoning efforts, the chat API's reasoning_effort and the Responses API's reasoning.effort alike.
    public static readonly string[] ReasoningEfforts = ["none", "minimal", "low", "medium", "high", "xhigh"];

    static JsonObject Kwargs(JsonElement? kwargs)
    {
        if (kwargs is not { ValueKind: not JsonValueKind.Null } element) return [];
        Check.That(element.ValueKind == JsonValueKind.Object, "chat_template_kwargs", "chat_template_kwargs must be an object.");
        Check.ValidText(element, "chat_template_kwargs");
        return JsonObject.Create(element)!;
    }
}
