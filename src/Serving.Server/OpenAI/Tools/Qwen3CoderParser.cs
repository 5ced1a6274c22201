using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Server.OpenAI.Tools;

/// Qwen3-Coder's XML tool calling (vLLM's "qwen3_coder"): each call is
///   <tool_call>
///   <function=NAME>
///   <parameter=ARG>
///   VALUE
///   </parameter>
///   </function>
///   </tool_call>
/// (the <tool_call> wrapper may be missing). A value is raw text, one newline trimmed at each end; it becomes the JSON
/// its parameter's schema in the request's tools says: a string as written, integer / number / boolean / null read as
/// such, object and array read as JSON; a value that is not what its type says, or a parameter the schema does not
/// name, stays a string.
internal sealed class Qwen3CoderParser(JsonArray? tools) : ToolCallParser
{
    const string CallOpen = "<tool_call>", CallClose = "</tool_call>";
    const string FunctionOpen = "<function=", FunctionClose = "</function>";
    const string ParameterOpen = "<parameter=", ParameterClose = "</parameter>";

    public override int? FindStart(string text)
    {
        var call = text.IndexOf(CallOpen, StringComparison.Ordinal);
        var function = text.IndexOf(FunctionOpen, StringComparison.Ordinal);
        return (call, function) switch
        {
            ( < 0, < 0) => null,
            ( < 0, _) => function,
            (_, < 0) => call,
            _ => Math.Min(call, function),
        };
    }

    public override int PossibleStartLength(string text) => Math.Max(PartialMarker(text, CallOpen), PartialMarker(text, FunctionOpen));

    protected override IReadOnlyList<ParsedToolCall>? ParseCalls(string calls)
    {
        var parsed = new List<ParsedToolCall>();
        var at = 0;
        while (calls.IndexOf(FunctionOpen, at, StringComparison.Ordinal) is var open and >= 0)
        {
            // only wrappers and white space between calls
            if (!string.IsNullOrWhiteSpace(calls[at..open].Replace(CallOpen, "").Replace(CallClose, ""))) return null;
            var nameEnd = calls.IndexOf('>', open);
            var close = calls.IndexOf(FunctionClose, open, StringComparison.Ordinal);
            if (nameEnd < 0 || close < 0 || nameEnd > close) return null;
            var name = calls[(open + FunctionOpen.Length)..nameEnd].Trim();
            if (name.Length == 0 || Arguments(name, calls[(nameEnd + 1)..close]) is not { } arguments) return null;
            parsed.Add(new ParsedToolCall(name, arguments.ToJsonString()));
            at = close + FunctionClose.Length;
        }
        return parsed.Count > 0 && string.IsNullOrWhiteSpace(calls[at..].Replace(CallClose, "")) ? parsed : null;
    }

    // the <parameter=...> elements of one function's body as a JSON object; null when the body holds anything else
    JsonObject? Arguments(string function, string body)
    {
        var arguments = new JsonObject();
        var at = 0;
        while (body.IndexOf(ParameterOpen, at, StringComparison.Ordinal) is var open and >= 0)
        {
            if (!string.IsNullOrWhiteSpace(body[at..open])) return null;
            var nameEnd = body.IndexOf('>', open);
            var close = body.IndexOf(ParameterClose, open, StringComparison.Ordinal);
            if (nameEnd < 0 || close < 0 || nameEnd > close) return null;
            var name = body[(open + ParameterOpen.Length)..nameEnd].Trim();
            if (name.Length == 0 || arguments.ContainsKey(name)) return null;
            arguments[name] = Value(TrimOneNewline(body[(nameEnd + 1)..close]), TypesOf(function, name));
            at = close + ParameterClose.Length;
        }
        return string.IsNullOrWhiteSpace(body[at..]) ? arguments : null;
    }

    static string TrimOneNewline(string value)
    {
        if (value.StartsWith('\n')) value = value[1..];
        if (value.EndsWith('\n')) value = value[..^1];
        return value;
    }

    // the JSON types the schema allows for the parameter ("type": a name or a list of names); empty when it says none
    IReadOnlyList<string> TypesOf(string function, string parameter)
    {
        var definition = tools?.OfType<JsonObject>()
            .Select(tool => tool["function"] as JsonObject)
            .FirstOrDefault(f => f?["name"] is JsonValue name && name.GetValueKind() == JsonValueKind.String && name.GetValue<string>() == function);
        // a schema may be true / false, or anything but an object where a keyword is expected: it says no type then
        var properties = (definition?["parameters"] as JsonObject)?["properties"] as JsonObject;
        var type = (properties?[parameter] as JsonObject)?["type"];
        return type switch
        {
            JsonValue single when single.GetValueKind() == JsonValueKind.String => [single.GetValue<string>()],
            JsonArray several => [.. several.OfType<JsonValue>().Where(v => v.GetValueKind() == JsonValueKind.String).Select(v => v.GetValue<string>())],
            _ => [],
        };
    }

    // the value as the first of its types it reads as; a string otherwise
    static JsonNode? Value(string text, IReadOnlyList<string> types)
    {
        foreach (var type in types)
        {
            switch (type)
            {
                case "string":
                    return JsonValue.Create(text);
                case "null" when text.Trim() == "null":
                    return null;
                case "boolean" when text.Trim().ToLowerInvariant() is "true" or "false":
                    return JsonValue.Create(text.Trim().Equals("true", StringComparison.OrdinalIgnoreCase));
                case "integer" when long.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer):
                    return JsonValue.Create(integer);
                case "number" when double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && double.IsFinite(number):
                    return number == Math.Floor(number) && Math.Abs(number) < 1e15 && !text.Contains('.') && !text.Contains('e', StringComparison.OrdinalIgnoreCase)
                        ? JsonValue.Create((long)number) : JsonValue.Create(number);
                case "object" or "array":
                    try
                    {
                        var node = JsonNode.Parse(text);
                        if (type == "object" ? node is JsonObject : node is JsonArray) return node;
                    }
                    catch (JsonException)
                    {
                    }
                    break;
            }
        }
        return JsonValue.Create(text);
    }
}
