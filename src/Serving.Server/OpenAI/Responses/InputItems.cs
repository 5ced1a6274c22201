using System.Text.Json;
using Serving.Server.Errors;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI.Responses;

/// Reads a request's "input" into items: a string is one user message; a list may hold messages (OpenAI's short
/// {role, content} form or {"type": "message", ...}, content a string or text parts), function calls, their
/// outputs and reasoning items, as a client sends back a response's output. Only text is taken: an image, a file
/// or a reference to an item is refused naming where it is.
internal static class InputItems
{
    static readonly HashSet<string> Roles = ["user", "assistant", "system", "developer"];

    public static IReadOnlyList<ResponseItem> Read(JsonElement? input)
    {
        Check.That(input is { ValueKind: JsonValueKind.String or JsonValueKind.Array }, "input",
            "input must be a string or a list of input items.");
        if (input!.Value.ValueKind == JsonValueKind.String)
            return [new MessageItem(ItemIds.New("msg"), "user", [new ContentPart("input_text", Check.Text(input.Value, "input"))], "completed")];
        var items = new List<ResponseItem>();
        var index = 0;
        foreach (var item in input.Value.EnumerateArray())
        {
            items.Add(One(item, $"input[{index}]"));
            index++;
        }
        return items;
    }

    static ResponseItem One(JsonElement item, string param)
    {
        Check.That(item.ValueKind == JsonValueKind.Object, param, $"{param} must be an object.");
        var type = OptionalString(item, "type", param) ?? "message";
        var id = OptionalString(item, "id", param);
        return type switch
        {
            "message" => Message(item, id, param),
            "function_call" => new FunctionCallItem(id ?? ItemIds.New("fc"), RequiredString(item, "call_id", param),
                RequiredString(item, "name", param), Arguments(item, param), "completed"),
            "function_call_output" => new FunctionCallOutputItem(id ?? ItemIds.New("fco"), RequiredString(item, "call_id", param),
                FunctionOutput(item, param), "completed"),
            "reasoning" => new ReasoningItem(id ?? ItemIds.New("rs"), Parts(item, "summary", param, "summary_text"),
                Parts(item, "content", param, "reasoning_text"), "completed"),
            _ => throw ApiException.BadRequest(
                $"{param}.type '{type}' is not supported (supported: message, function_call, function_call_output, reasoning).", $"{param}.type"),
        };
    }

    static MessageItem Message(JsonElement item, string? id, string param)
    {
        var role = RequiredString(item, "role", param);
        Check.That(Roles.Contains(role), $"{param}.role", $"{param}.role must be one of: {string.Join(", ", Roles)}.");
        var partType = role == "assistant" ? "output_text" : "input_text";
        Check.That(item.TryGetProperty("content", out var content), $"{param}.content", $"{param}.content is required.");
        IReadOnlyList<ContentPart> parts = content.ValueKind switch
        {
            JsonValueKind.String => [new ContentPart(partType, Check.Text(content, $"{param}.content"))],
            JsonValueKind.Array => TextParts(content, $"{param}.content", partType),
            _ => throw ApiException.BadRequest($"{param}.content must be a string or a list of content parts.", $"{param}.content"),
        };
        return new MessageItem(id ?? ItemIds.New("msg"), role, parts, "completed");
    }

    /// A function call's arguments: JSON text (refused here, where the item's place is known, rather than in the
    /// chat messages it becomes).
    static string Arguments(JsonElement item, string param)
    {
        var arguments = RequiredString(item, "arguments", param);
        ChatMessages.ParseArguments(arguments, $"{param}.arguments");
        return arguments;
    }

    /// A function's output: a string, or text parts (joined).
    static string FunctionOutput(JsonElement item, string param)
    {
        Check.That(item.TryGetProperty("output", out var output) && output.ValueKind is JsonValueKind.String or JsonValueKind.Array,
            $"{param}.output", $"{param}.output must be a string or a list of text parts.");
        return output.ValueKind == JsonValueKind.String ? Check.Text(output, $"{param}.output")
            : string.Join("\n", TextParts(output, $"{param}.output", "input_text").Select(p => p.Text));
    }

    /// Text parts; each becomes a part of partType (the kind the message's role writes).
    static List<ContentPart> TextParts(JsonElement parts, string param, string partType)
    {
        var result = new List<ContentPart>();
        var index = 0;
        foreach (var part in parts.EnumerateArray())
        {
            var at = $"{param}[{index++}]";
            Check.That(part.ValueKind == JsonValueKind.Object, at, $"{at} must be an object.");
            var type = RequiredString(part, "type", at);
            var field = type switch
            {
                "input_text" or "output_text" or "text" => "text",
                "refusal" => "refusal",
                _ => throw ApiException.BadRequest($"Only text content parts are supported (got type '{type}').", $"{at}.type"),
            };
            result.Add(new ContentPart(partType, RequiredString(part, field, at)));
        }
        return result;
    }

    /// A reasoning item's summary or content: a list of {type, text} parts (absent: none).
    static List<ContentPart> Parts(JsonElement item, string field, string param, string partType)
    {
        if (!item.TryGetProperty(field, out var parts) || parts.ValueKind == JsonValueKind.Null) return [];
        Check.That(parts.ValueKind == JsonValueKind.Array, $"{param}.{field}", $"{param}.{field} must be a list of text parts.");
        var result = new List<ContentPart>();
        var index = 0;
        foreach (var part in parts.EnumerateArray())
        {
            var at = $"{param}.{field}[{index++}]";
            Check.That(part.ValueKind == JsonValueKind.Object, at, $"{at} must be an object.");
            result.Add(new ContentPart(partType, RequiredString(part, "text", at)));
        }
        return result;
    }

    static string RequiredString(JsonElement item, string field, string param) =>
        OptionalString(item, field, param) ?? throw ApiException.BadRequest($"{param}.{field} must be a string.", $"{param}.{field}");

    static string? OptionalString(JsonElement item, string field, string param)
    {
        if (!item.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        Check.That(value.ValueKind == JsonValueKind.String, $"{param}.{field}", $"{param}.{field} must be a string.");
        return Check.Text(value, $"{param}.{field}");
    }
}
