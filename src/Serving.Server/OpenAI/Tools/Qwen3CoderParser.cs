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
/// (the <tool_call> wrapper may be missing, and so may a closing tag, as when a stop cut the answer: the element then
/// ends where the next one begins). A value is raw text, one newline trimmed at each end; `null` is null, and otherwise
/// it becomes the JSON its parameter's schema in the request's tools says (with the aliases vLLM reads: int, float,
/// bool, str, dict, list...): a string as written, integer / number / boolean read as such, object and array read as
/// JSON; a value that is not what its type says, or a parameter the schema does not name, stays a string.
/// ByteDance's Seed-OSS writes the same calls in <seed:tool_call> ... </seed:tool_call> (vLLM's "seed_oss": SeedOss).
internal sealed class Qwen3CoderParser(JsonArray? tools, string callOpen = "<tool_call>", string callClose = "</tool_call>") : ToolCallParser
{
    /// Seed-OSS's calls: Qwen3-Coder's in its own wrapper.
    public static Qwen3CoderParser SeedOss(JsonArray? tools) => new(tools, "<seed:tool_call>", "</seed:tool_call>");

    const string FunctionOpen = "<function=", FunctionClose = "</function>";
    const string ParameterOpen = "<parameter=", ParameterClose = "</parameter>";

    public override int? FindStart(string text)
    {
        var call = text.IndexOf(callOpen, StringComparison.Ordinal);
        var function = text.IndexOf(FunctionOpen, StringComparison.Ordinal);
        return (call, function) switch
        {
            ( < 0, < 0) => null,
            ( < 0, _) => function,
            (_, < 0) => call,
            _ => Math.Min(call, function),
        };
    }

    public override int PossibleStartLength(string text) => PartialMarker(text, callOpen, FunctionOpen);

    protected override IReadOnlyList<ParsedToolCall>? ParseCalls(string calls)
    {
        var parsed = new List<ParsedToolCall>();
        var at = 0;
        while (calls.IndexOf(FunctionOpen, at, StringComparison.Ordinal) is var open and >= 0)
        {
            // only wrappers and white space between calls
            if (!string.IsNullOrWhiteSpace(calls[at..open].Replace(callOpen, "").Replace(callClose, ""))) return null;
            var nameEnd = calls.IndexOf('>', open);
            if (nameEnd < 0) return null;
            var (end, next) = ElementEnd(calls, nameEnd + 1, FunctionClose, FunctionOpen, callClose);
            var name = calls[(open + FunctionOpen.Length)..nameEnd].Trim();
            if (name.Length == 0 || name.Contains('<') || Arguments(name, calls[(nameEnd + 1)..end]) is not { } arguments) return null;
            parsed.Add(new ParsedToolCall(name, arguments.ToJsonString()));
            at = next;
        }
        return parsed.Count > 0 && string.IsNullOrWhiteSpace(calls[at..].Replace(callClose, "")) ? parsed : null;
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
            if (nameEnd < 0) return null;
            var (end, next) = ElementEnd(body, nameEnd + 1, ParameterClose, ParameterOpen, null);
            var name = body[(open + ParameterOpen.Length)..nameEnd].Trim();
            if (name.Length == 0 || name.Contains('<') || arguments.ContainsKey(name)) return null;
            arguments[name] = Value(TrimOneNewline(body[(nameEnd + 1)..end]), TypesOf(function, name));
            at = next;
        }
        return string.IsNullOrWhiteSpace(body[at..]) ? arguments : null;
    }

    // where an element whose content starts at `from` ends, and where reading goes on: at its closing tag, or where the
    // next element of its kind (or its enclosing element's close) begins, or at the end of the text
    static (int End, int Next) ElementEnd(string text, int from, string close, string nextOpen, string? outerClose)
    {
        var closeAt = text.IndexOf(close, from, StringComparison.Ordinal);
        var nextAt = text.IndexOf(nextOpen, from, StringComparison.Ordinal);
        if (closeAt >= 0 && (nextAt < 0 || closeAt < nextAt)) return (closeAt, closeAt + close.Length);
        var end = nextAt >= 0 ? nextAt : text.Length;
        if (outerClose is not null && text.IndexOf(outerClose, from, StringComparison.Ordinal) is var outer and >= 0 && outer < end) end = outer;
        return (end, end);
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

    // a schema type by JSON Schema's name, from the aliases models' tool definitions use
    static string Canonical(string type) => type.ToLowerInvariant() switch
    {
        "int" or "integer" or "uint" or "long" or "short" or "unsigned" => "integer",
        "float" or "double" or "number" or "num" => "number",
        "bool" or "boolean" or "binary" => "boolean",
        "str" or "string" or "text" or "varchar" or "char" or "enum" => "string",
        "dict" or "object" or "map" => "object",
        "list" or "array" or "arr" or "sequence" => "array",
        var other => other,
    };

    // the value as the first of its types it reads as; a string otherwise
    static JsonNode? Value(string text, IReadOnlyList<string> types)
    {
        if (text.Trim().Equals("null", StringComparison.OrdinalIgnoreCase)) return null;
        foreach (var type in types.Select(Canonical))
        {
            switch (type)
            {
                case "string":
                    return JsonValue.Create(text);
                case "boolean" when text.Trim().ToLowerInvariant() is "true" or "false":
                    return JsonValue.Create(text.Trim().Equals("true", StringComparison.OrdinalIgnoreCase));
                case "integer" when long.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer):
                    return JsonValue.Create(integer);
                case "number" when long.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var whole):
                    return JsonValue.Create(whole);   // written as an integer: kept one
                case "number" when double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && double.IsFinite(number):
                    return JsonValue.Create(number);
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
