using Serving.Server.OpenAI.Chat;

namespace Serving.Server.OpenAI.Responses;

/// The ids of a response's output items, made once: a stream announces each item under the id the finished
/// response lists it with.
internal sealed class OutputIds
{
    readonly List<string> _calls = [];

    public string Reasoning { get; } = ItemIds.New("rs");
    public string Message { get; } = ItemIds.New("msg");

    public string Call(int index)
    {
        while (_calls.Count <= index) _calls.Add(ItemIds.New("fc"));
        return _calls[index];
    }
}

/// A finished answer as a response's output and status. The items come in the order the answer wrote them: its
/// thinking (a reasoning item, when it has any), its text (a message, unless empty beside other items), then one item
/// per function call.
internal static class ResponseOutput
{
    public static IReadOnlyList<ResponseItem> Items(ChatChoice choice, OutputIds ids, bool logprobs)
    {
        var message = choice.Message;
        var items = new List<ResponseItem>();
        if (message.Reasoning is { Length: > 0 } thinking)
            items.Add(new ReasoningItem(ids.Reasoning, [], [new ContentPart("reasoning_text", thinking)], "completed"));
        var calls = message.ToolCalls ?? [];
        if (message.Content is { } content && (content.Length > 0 || items.Count == 0 && calls.Count == 0))
        {
            var part = ContentPart.Output(content, logprobs ? choice.Logprobs?.Content ?? [] : null);
            items.Add(new MessageItem(ids.Message, "assistant", [part], choice.FinishReason == "length" ? "incomplete" : "completed"));
        }
        for (var i = 0; i < calls.Count; i++)
            items.Add(new FunctionCallItem(ids.Call(i), calls[i].Id, calls[i].Function.Name, calls[i].Function.Arguments, "completed"));
        return items;
    }

    /// "completed"; "incomplete" when the answer ran out of max_output_tokens (or the context), or the server aborted
    /// it (draining: no incomplete_details reason, OpenAI's reasons being max_output_tokens and content_filter).
    public static string Status(string? finishReason) => finishReason is "length" or "abort" ? "incomplete" : "completed";

    public static IncompleteDetails? Incomplete(string? finishReason) =>
        finishReason == "length" ? new IncompleteDetails("max_output_tokens") : null;

    public static ResponseUsage Usage(Usage usage, int reasoningTokens) => new(usage.PromptTokens,
        new InputTokensDetails(usage.PromptTokensDetails.CachedTokens), usage.CompletionTokens,
        new OutputTokensDetails(reasoningTokens), usage.TotalTokens);
}
