using Serving.Server.Generation;
using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Engine;

namespace Serving.Server.OpenAI;

/// Checks "messages" and normalizes it for the chat template: each message becomes {role, content} with content
/// a string, a list of text parts ({"type": "text", "text"}) or null, as the request gave it (the engine gives the
/// template the form it reads: Serving.Engine.Templates.ChatContentFormat). An assistant
/// message keeps its tool_calls, with each call's arguments parsed from their JSON text into an object (the
/// templates of Llama 3.1 and Qwen2.5 write them with tojson, as vLLM hands them over); a tool message keeps
/// its tool_call_id. An assistant message's thinking ("reasoning", or the older "reasoning_content") goes to the
/// template as reasoning_content, the name the templates of reasoning models (Qwen3) read.
internal static class ChatMessages
{
    static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool"];

    /// prompts, when given, refuses a content too long for the context from its length, before decoding it.
    /// responseRole: the role the server's answers carry (--response-role), accepted back in a replayed conversation.
    public static JsonArray Normalize(JsonElement? messages, IPromptProcessor? prompts = null, string responseRole = "assistant")
    {
        Check.That(messages is { ValueKind: JsonValueKind.Array }, "messages", "messages must be a list of message objects.");
        Check.That(messages!.Value.GetArrayLength() > 0, "messages", "messages must not be empty.");
        var normalized = new JsonArray();
        var index = 0;
        foreach (var message in messages.Value.EnumerateArray())
        {
            normalized.Add(NormalizeOne(message, $"messages[{index}]", prompts, responseRole));
            index++;
        }
        return normalized;
    }

    static JsonObject NormalizeOne(JsonElement message, string param, IPromptProcessor? prompts, string responseRole)
    {
        Check.That(message.ValueKind == JsonValueKind.Object, param, $"{param} must be an object.");
        Check.ValidText(message, param);
        var role = message.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? Check.Text(r, $"{param}.role") : null;
        var content = message.TryGetProperty("content", out var c) ? Content(c, $"{param}.content", prompts) : null;
        var name = message.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? Check.Text(n, $"{param}.name") : null;
        var toolCallId = role == "tool" && message.TryGetProperty("tool_call_id", out var id) && id.ValueKind == JsonValueKind.String
            ? Check.Text(id, $"{param}.tool_call_id") : null;
        var result = Message(role, content, name, toolCallId, param, responseRole);
        if (message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind != JsonValueKind.Null)
        {
            Check.That(role == "assistant", $"{param}.tool_calls", $"{param}.tool_calls is only allowed on assistant messages.");
            result["tool_calls"] = ToolCalls(calls, $"{param}.tool_calls");
        }
        if (role == "assistant" && Reasoning(message, param) is { } reasoning) result["reasoning_content"] = reasoning;
        return result;
    }

    static string? Reasoning(JsonElement message, string param)
    {
        foreach (var field in new[] { "reasoning", "reasoning_content" })
            if (message.TryGetProperty(field, out var value) && value.ValueKind != JsonValueKind.Null)
            {
                Check.That(value.ValueKind == JsonValueKind.String, $"{param}.{field}", $"{param}.{field} must be a string.");
                return Check.Text(value, $"{param}.{field}");
            }
        return null;
    }

    static JsonArray ToolCalls(JsonElement calls, string param)
    {
        Check.That(calls.ValueKind == JsonValueKind.Array, param, $"{param} must be a list of tool calls.");
        var result = new JsonArray();
        var index = 0;
        foreach (var call in calls.EnumerateArray())
        {
            var at = $"{param}[{index++}]";
            Check.That(call.ValueKind == JsonValueKind.Object, at, $"{at} must be an object.");
            Check.That(call.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String, $"{at}.id", $"{at}.id must be a string.");
            Check.That(!call.TryGetProperty("type", out var type) || type.ValueKind == JsonValueKind.String && type.GetString() == "function",
                $"{at}.type", $"{at}.type must be \"function\".");
            Check.That(call.TryGetProperty("function", out var function) && function.ValueKind == JsonValueKind.Object, $"{at}.function",
                $"{at}.function must be an object with name and arguments.");
            Check.That(function.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String, $"{at}.function.name",
                $"{at}.function.name must be a string.");
            Check.That(function.TryGetProperty("arguments", out var arguments) && arguments.ValueKind == JsonValueKind.String,
                $"{at}.function.arguments", $"{at}.function.arguments must be a string of JSON.");
            result.Add(new JsonObject
            {
                ["id"] = Check.Text(id, $"{at}.id"),
                ["type"] = "function",
                ["function"] = new JsonObject
                {
                    ["name"] = Check.Text(name, $"{at}.function.name"),
                    ["arguments"] = ParseArguments(Check.Text(arguments, $"{at}.function.arguments"), $"{at}.function.arguments"),
                },
            });
        }
        return result;
    }

    /// A tool call's arguments, JSON text, as the node the chat template renders; refused naming param when not JSON.
    internal static JsonNode? ParseArguments(string arguments, string param)
    {
        try
        {
            return JsonNode.Parse(arguments);
        }
        catch (JsonException)
        {
            throw Errors.ApiException.BadRequest($"{param} is not valid JSON.", param);
        }
    }

    /// One message as the chat template sees it; the role must be one the APIs accept, and a tool message names the
    /// call it answers (gRPC builds its messages here too). param is the message's path in error messages ("messages[2]").
    public static JsonObject Message(string? role, JsonNode? content, string? name, string? toolCallId, string param,
        string responseRole = "assistant")
    {
        Check.That(role is not null && (Roles.Contains(role) || role == responseRole), $"{param}.role",
            $"{param}.role must be one of: {string.Join(", ", Roles.Append(responseRole).Distinct())}.");
        var result = new JsonObject { ["role"] = role, ["content"] = content };
        if (name is not null) result["name"] = name;
        if (role == "tool")
        {
            Check.That(!string.IsNullOrEmpty(toolCallId), $"{param}.tool_call_id",
                $"{param}.tool_call_id must be the id of the tool call this message answers.");
            result["tool_call_id"] = toolCallId;
        }
        return result;
    }

    static JsonNode? Content(JsonElement content, string param, IPromptProcessor? prompts) => content.ValueKind switch
    {
        JsonValueKind.String => prompts is null ? Check.Text(content, param) : prompts.Text(content, param),
        JsonValueKind.Null => null,
        JsonValueKind.Array => new JsonArray([.. TextParts(content, param).Select(text => new JsonObject { ["type"] = "text", ["text"] = text })]),
        _ => throw Errors.ApiException.BadRequest($"{param} must be a string or a list of text parts.", param),
    };

    static IEnumerable<string> TextParts(JsonElement parts, string param)
    {
        var index = 0;
        foreach (var part in parts.EnumerateArray())
        {
            var at = $"{param}[{index++}]";
            Check.That(part.ValueKind == JsonValueKind.Object, at, $"{at} must be an object.");
            var type = part.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? Check.Text(t, $"{at}.type") : null;
            Check.That(type == "text", $"{at}.type", $"Only text content parts are supported (got type '{type}').");
            Check.That(part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String,
                $"{at}.text", $"{at}.text must be a string.");
            yield return Check.Text(text, $"{at}.text");
        }
    }
}
