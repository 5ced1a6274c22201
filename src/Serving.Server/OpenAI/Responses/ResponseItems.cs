using System.Text.Json.Serialization;

namespace Serving.Server.OpenAI.Responses;

// The items of a Responses conversation, as OpenAI writes them: what a request's input holds and what a response
// outputs are the same kinds, so a stored response's output is the next request's history as it is. Always
// serialized as ResponseItem, so that "type" is written.

[JsonPolymorphic(TypeDiscriminatorPropertyName = "type")]
[JsonDerivedType(typeof(MessageItem), "message")]
[JsonDerivedType(typeof(ReasoningItem), "reasoning")]
[JsonDerivedType(typeof(FunctionCallItem), "function_call")]
[JsonDerivedType(typeof(FunctionCallOutputItem), "function_call_output")]
internal abstract record ResponseItem(string Id);

/// A message: role system, developer, user (content parts "input_text") or assistant ("output_text").
internal sealed record MessageItem(string Id, string Role, IReadOnlyList<ContentPart> Content, string Status) : ResponseItem(Id)
{
    [JsonIgnore]
    public string Text => string.Join("\n", Content.Select(part => part.Text));
}

/// A text part: "input_text", "output_text" (with its annotations, and its tokens' log-probabilities when asked for),
/// "summary_text" or "reasoning_text".
internal sealed record ContentPart(string Type, string Text)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<object>? Annotations { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ChatTokenLogprob>? Logprobs { get; init; }

    public static ContentPart Output(string text, IReadOnlyList<ChatTokenLogprob>? logprobs = null) =>
        new("output_text", text) { Annotations = [], Logprobs = logprobs };
}

/// A model's thinking (with a --reasoning-parser): its text as one "reasoning_text" part, no summary.
internal sealed record ReasoningItem(string Id, IReadOnlyList<ContentPart> Summary, IReadOnlyList<ContentPart> Content, string Status)
    : ResponseItem(Id)
{
    /// The thinking as the chat template receives it: the content's text, else the summary's.
    [JsonIgnore]
    public string Text => string.Join("\n", (Content.Count > 0 ? Content : Summary).Select(part => part.Text));
}

internal sealed record FunctionCallItem(string Id, string CallId, string Name, string Arguments, string Status) : ResponseItem(Id);

internal sealed record FunctionCallOutputItem(string Id, string CallId, string Output, string Status) : ResponseItem(Id);

/// New item ids in OpenAI's forms (msg_..., rs_..., fc_...).
internal static class ItemIds
{
    public static string New(string prefix) => $"{prefix}_{Guid.NewGuid():N}";
}
