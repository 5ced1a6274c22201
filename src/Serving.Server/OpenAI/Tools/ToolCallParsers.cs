using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Server.OpenAI.Tools;

/// One function call read from the model's text: the function's name and its arguments as JSON text.
internal sealed record ParsedToolCall(string Name, string Arguments);

/// Reads tool calls out of a model's free text (tool_choice "auto"), in the format its family was trained on
/// (vLLM's --tool-call-parser names). Text before the first call is content; a text whose calls do not parse
/// is all content.
internal abstract class ToolCallParser
{
    /// Where the calls begin in text, or null when nothing so far starts one.
    public abstract int? FindStart(string text);

    /// How many characters at the end of text might be the beginning of a call marker, to hold back while
    /// streaming content.
    public abstract int PossibleStartLength(string text);

    /// The calls from their start on (see FindStart); null when they do not parse.
    protected abstract IReadOnlyList<ParsedToolCall>? ParseCalls(string calls);

    public (string? Content, IReadOnlyList<ParsedToolCall> Calls) Parse(string text)
    {
        if (FindStart(text) is not { } start || ParseCalls(text[start..]) is not { Count: > 0 } calls)
            return (text, []);
        var content = text[..start];
        return (string.IsNullOrWhiteSpace(content) ? null : content, calls);
    }

    /// Longest tail of text that is a proper prefix of one of the markers.
    protected static int PartialMarker(string text, params IEnumerable<string> markers) =>
        Streaming.MarkerHoldBack.PartialMarkerLength(text, markers);

    /// Consecutive JSON values in text separated by whitespace or the separator; null when any is not JSON.
    protected static List<JsonNode>? JsonValues(string text, char separator)
    {
        var values = new List<JsonNode>();
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        var offset = 0;
        while (true)
        {
            while (offset < bytes.Length && (bytes[offset] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t' || bytes[offset] == separator)) offset++;
            if (offset == bytes.Length) return values;
            try
            {
                var reader = new Utf8JsonReader(bytes.AsSpan(offset), new JsonReaderOptions { AllowMultipleValues = true });
                using var document = JsonDocument.ParseValue(ref reader);
                values.Add(JsonNode.Parse(document.RootElement.GetRawText())!);
                offset += (int)reader.BytesConsumed;
            }
            catch (JsonException)
            {
                return null;
            }
        }
    }

    /// {"name": ..., "<argumentsKey>": {...}} as a call; null when it is not one.
    protected static ParsedToolCall? Call(JsonNode? node, params string[] argumentKeys)
    {
        if (node is not JsonObject obj || obj["name"] is not JsonValue name || name.GetValueKind() != JsonValueKind.String) return null;
        var arguments = argumentKeys.Select(key => obj[key]).FirstOrDefault(a => a is not null);
        var text = arguments switch
        {
            null => "{}",
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            _ => arguments.ToJsonString(),
        };
        return new ParsedToolCall(name.GetValue<string>(), text);
    }

    protected static IReadOnlyList<ParsedToolCall>? AllCalls(IEnumerable<JsonNode?>? nodes, params string[] argumentKeys)
    {
        if (nodes is null) return null;
        var calls = nodes.Select(n => Call(n, argumentKeys)).ToList();
        return calls.Count > 0 && calls.All(c => c is not null) ? calls.Select(c => c!).ToList() : null;
    }
}

/// The --tool-call-parser names and their parsers.
internal static class ToolCallParsers
{
    public static readonly IReadOnlyList<string> Names =
        ["llama3_json", "hermes", "mistral", "pythonic", "granite", "phi4_mini_json", "qwen3_coder", "seed_oss", HarmonyCallParser.Name];

    /// tools: the request's tool list as the chat template receives it (qwen3_coder and seed_oss read its parameters' types).
    public static ToolCallParser Create(string name, JsonArray? tools = null) => name switch
    {
        HarmonyCallParser.Name => new HarmonyCallParser(),
        "llama3_json" => new Llama3JsonParser(),
        "hermes" => new HermesParser(),
        "mistral" => new MistralParser(),
        "pythonic" => new PythonicParser(),
        "granite" => new GraniteParser(),
        "phi4_mini_json" => new Phi4MiniJsonParser(),
        "qwen3_coder" => new Qwen3CoderParser(tools),
        "seed_oss" => Qwen3CoderParser.SeedOss(tools),
        _ => throw new ArgumentException($"unknown tool call parser '{name}'", nameof(name)),
    };
}

/// IBM Granite 3: the whole answer is <|tool_call|>[{"name": ..., "arguments": {...}}, ...] (<tool_call> in some of its
/// releases, or the bare list).
internal sealed class GraniteParser : ToolCallParser
{
    static readonly string[] Markers = ["<|tool_call|>", "<tool_call>"];

    public override int? FindStart(string text)
    {
        var rest = text.AsSpan().TrimStart();
        foreach (var marker in Markers)
            if (rest.StartsWith(marker)) return 0;
        return rest.StartsWith("[") ? 0 : null;
    }

    public override int PossibleStartLength(string text)
    {
        var trimmed = text.TrimStart();
        return trimmed.Length == 0 || Markers.Any(m => m.StartsWith(trimmed, StringComparison.Ordinal)) ? text.Length : 0;
    }

    protected override IReadOnlyList<ParsedToolCall>? ParseCalls(string calls)
    {
        var body = calls.TrimStart();
        foreach (var marker in Markers)
            if (body.StartsWith(marker, StringComparison.Ordinal)) body = body[marker.Length..];
        return JsonValues(body, ' ') is [JsonArray list] ? AllCalls(list, "arguments", "parameters") : null;
    }
}

/// Phi-4-mini: functools[{"name": ..., "arguments": {...}}, ...], text before it being content.
internal sealed class Phi4MiniJsonParser : ToolCallParser
{
    const string Marker = "functools";

    public override int? FindStart(string text) => text.IndexOf(Marker + "[", StringComparison.Ordinal) is var i and >= 0 ? i : null;

    public override int PossibleStartLength(string text) => PartialMarker(text, Marker + "[");

    protected override IReadOnlyList<ParsedToolCall>? ParseCalls(string calls) =>
        JsonValues(calls[Marker.Length..], ' ') is [JsonArray list] ? AllCalls(list, "arguments", "parameters") : null;
}

/// Formats whose calls are the whole answer: it starts with tag or opening (white space before them is theirs).
internal abstract class WholeAnswerToolCallParser(string tag, string opening) : ToolCallParser
{
    public override int? FindStart(string text)
    {
        var rest = text.AsSpan().TrimStart();
        return rest.StartsWith(tag) || rest.StartsWith(opening) ? 0 : null;
    }

    public override int PossibleStartLength(string text) =>
        string.IsNullOrWhiteSpace(text) || tag.StartsWith(text.TrimStart(), StringComparison.Ordinal) ? text.Length : 0;
}

/// Llama 3.1/3.2 JSON tool calling: the whole answer is {"name": ..., "parameters": {...}} (optionally after
/// <|python_tag|>, several separated by ';').
internal sealed class Llama3JsonParser() : WholeAnswerToolCallParser(PythonTag, "{")
{
    const string PythonTag = "<|python_tag|>";

    protected override IReadOnlyList<ParsedToolCall>? ParseCalls(string calls)
    {
        var body = calls.TrimStart();
        if (body.StartsWith(PythonTag, StringComparison.Ordinal)) body = body[PythonTag.Length..];
        return AllCalls(JsonValues(body, ';'), "parameters", "arguments");
    }
}

/// Hermes 2 Pro / Qwen2.5: each call is <tool_call>{"name": ..., "arguments": {...}}</tool_call>.
internal sealed class HermesParser : ToolCallParser
{
    const string Open = "<tool_call>";
    const string Close = "</tool_call>";

    public override int? FindStart(string text) => text.IndexOf(Open, StringComparison.Ordinal) is var i and >= 0 ? i : null;

    public override int PossibleStartLength(string text) => PartialMarker(text, Open);

    protected override IReadOnlyList<ParsedToolCall>? ParseCalls(string calls)
    {
        var nodes = new List<JsonNode?>();
        foreach (var block in calls.Split(Open, StringSplitOptions.RemoveEmptyEntries))
        {
            var end = block.IndexOf(Close, StringComparison.Ordinal);
            var values = JsonValues(end >= 0 ? block[..end] : block, ' ');
            if (values is not [var single]) return null;
            nodes.Add(single);
        }
        return AllCalls(nodes, "arguments", "parameters");
    }
}

/// Mistral v0.3: [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]. [TOOL_CALLS] is a special token, so
/// with skip_special_tokens the text may start at the list itself.
internal sealed class MistralParser : ToolCallParser
{
    const string Marker = "[TOOL_CALLS]";

    public override int? FindStart(string text)
    {
        if (text.IndexOf(Marker, StringComparison.Ordinal) is var i and >= 0) return i;
        var start = text.Length - text.TrimStart().Length;
        return text.AsSpan(start).StartsWith("[{") ? start : null;
    }

    public override int PossibleStartLength(string text)
    {
        var trimmed = text.TrimStart();
        return string.IsNullOrWhiteSpace(text) || trimmed == "[" ? text.Length : PartialMarker(text, Marker);
    }

    protected override IReadOnlyList<ParsedToolCall>? ParseCalls(string calls)
    {
        var body = calls.StartsWith(Marker, StringComparison.Ordinal) ? calls[Marker.Length..] : calls;
        return JsonValues(body, ' ') is [JsonArray list] ? AllCalls(list, "arguments", "parameters") : null;
    }
}

/// gpt-oss (openai, with --reasoning-parser openai_gptoss): each call is a harmony message addressed to a function,
/// which the reasoning parser leaves in the content whole: a header naming `to=functions.NAME` (before or after its
/// channel), `<|message|>`, the arguments, and an end marker (`<|call|>`, the stop token that ends the answer). The
/// arguments are JSON as written, or kept as their text when they are not JSON (as vLLM keeps them).
internal sealed class HarmonyCallParser : ToolCallParser
{
    public const string Name = "openai";
    const string Marker = Reasoning.HarmonyParser.Marker;

    public override int? FindStart(string text)
    {
        for (var at = text.IndexOf(Marker, StringComparison.Ordinal); at >= 0; at = text.IndexOf(Marker, at + 1, StringComparison.Ordinal))
        {
            var message = text.IndexOf(Reasoning.HarmonyParser.Message, at, StringComparison.Ordinal);
            // a marker not yet followed by <|message|> may be a call's header still coming: held back until it is read
            // (the reasoning parser leaves no other marker in the content, so a held literal "<|" is rare)
            if (message < 0 || text.AsSpan(at, message - at).IndexOf(Reasoning.HarmonyParser.ToFunction, StringComparison.Ordinal) >= 0) return at;
        }
        return null;
    }

    public override int PossibleStartLength(string text) => PartialMarker(text, Marker);

    protected override IReadOnlyList<ParsedToolCall>? ParseCalls(string calls)
    {
        var parsed = new List<ParsedToolCall>();
        var rest = calls;
        while (rest.Length > 0)
        {
            var message = rest.IndexOf(Reasoning.HarmonyParser.Message, StringComparison.Ordinal);
            var to = message < 0 ? -1 : rest.AsSpan(0, message).IndexOf(Reasoning.HarmonyParser.ToFunction, StringComparison.Ordinal);
            if (to < 0) return null;
            var name = rest[(to + Reasoning.HarmonyParser.ToFunction.Length)..message];
            name = name[..(name.IndexOfAny([' ', '<']) is var stop and >= 0 ? stop : name.Length)];
            var body = rest[(message + Reasoning.HarmonyParser.Message.Length)..];
            var (end, length) = Reasoning.HarmonyParser.FirstEnd(body);
            var arguments = (end < 0 ? body : body[..end]).Trim();
            if (name.Length == 0) return null;
            parsed.Add(new ParsedToolCall(name, JsonValues(arguments, ' ') is [JsonObject values] ? values.ToJsonString() : arguments));
            rest = end < 0 ? "" : body[(end + length)..].TrimStart();
        }
        return parsed;
    }
}
