using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Serving.Engine.Grammar;
using Serving.Server.Errors;
using Serving.Server.Generation;
using Serving.Server.Options;

namespace Serving.Server.OpenAI.Tools;

/// How the answer may call tools (OpenAI's tool_choice): not at all, when the model decides (read back by
/// the --tool-call-parser), at least one call, or one call of a named function. The last two are enforced by
/// constrained decoding, so even a weak model returns a well-formed call.
internal enum ToolChoiceMode { None, Auto, Required, Named }

/// A checked tools + tool_choice pair: the tool list as the chat template receives it (transformers passes
/// the request's list as "tools"), the mode, and for required / named the output constraint.
internal sealed partial record ChatTools(JsonArray? TemplateTools, ToolChoiceMode Mode, string? NamedFunction,
    StructuredOutputsParams? Constraint)
{
    public static readonly ChatTools NoTools = new(null, ToolChoiceMode.None, null, null);

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,64}$")]
    private static partial Regex FunctionName();

    public static ChatTools Read(ChatRequest request, ServerOptions options)
    {
        var tools = Tools(request.Tools);
        var choice = request.ToolChoice;
        if (tools.Count == 0)
        {
            Check.That(choice is null or { ValueKind: JsonValueKind.Null } || IsNone(choice.Value), "tool_choice",
                "tool_choice is only allowed when tools are given.");
            return NoTools;
        }
        var template = new JsonArray([.. tools.Select(t => t.Definition.DeepClone())]);
        var (mode, named) = Choice(choice, tools);
        if (mode == ToolChoiceMode.Auto)
            Check.That(options.EnableAutoToolChoice && options.ToolCallParser is not null, "tool_choice",
                "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set.");
        var constraint = mode switch
        {
            ToolChoiceMode.Named => NamedConstraint(tools, named!),
            ToolChoiceMode.Required => RequiredConstraint(tools, request.ParallelToolCalls != false),
            _ => null,
        };
        return new ChatTools(template, mode, named, constraint);
    }

    /// The checked tool list as the chat template receives it, or null when there is none.
    public static JsonArray? TemplateToolsOf(JsonElement? element) =>
        Tools(element) is { Count: > 0 } tools ? new JsonArray([.. tools.Select(t => t.Definition.DeepClone())]) : null;

    sealed record Tool(string Name, JsonObject Definition, JsonNode? Parameters, int Index);

    static List<Tool> Tools(JsonElement? element)
    {
        if (element is null or { ValueKind: JsonValueKind.Null }) return [];
        Check.That(element.Value.ValueKind == JsonValueKind.Array, "tools", "tools must be a list of tool objects.");
        var tools = new List<Tool>();
        var index = 0;
        foreach (var item in element.Value.EnumerateArray())
        {
            var at = $"tools[{index}]";
            Check.That(item.ValueKind == JsonValueKind.Object, at, $"{at} must be an object.");
            Check.That(item.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && Check.Text(type, $"{at}.type") == "function",
                $"{at}.type", $"{at}.type must be \"function\".");
            Check.That(item.TryGetProperty("function", out var function) && function.ValueKind == JsonValueKind.Object,
                $"{at}.function", $"{at}.function must be an object with a name.");
            Check.That(function.TryGetProperty("name", out var nameElement) && nameElement.ValueKind == JsonValueKind.String
                && FunctionName().IsMatch(Check.Text(nameElement, $"{at}.function.name")),
                $"{at}.function.name", $"{at}.function.name must be 1-64 letters, digits, '_' or '-'.");
            var name = nameElement.GetString()!;
            Check.That(tools.All(t => t.Name != name), $"{at}.function.name", $"Tool '{name}' is defined twice.");
            JsonNode? parameters = null;
            if (function.TryGetProperty("parameters", out var p) && p.ValueKind != JsonValueKind.Null)
            {
                Check.That(p.ValueKind == JsonValueKind.Object, $"{at}.function.parameters", $"{at}.function.parameters must be a JSON Schema object.");
                parameters = JsonNode.Parse(p.GetRawText());
            }
            if (function.TryGetProperty("description", out var d))
                Check.That(d.ValueKind is JsonValueKind.String or JsonValueKind.Null, $"{at}.function.description", $"{at}.function.description must be a string.");
            tools.Add(new Tool(name, JsonNode.Parse(item.GetRawText())!.AsObject(), parameters, index));
            index++;
        }
        return tools;
    }

    static bool IsNone(JsonElement choice) => choice.ValueKind == JsonValueKind.String && choice.GetString() == "none";

    static (ToolChoiceMode, string?) Choice(JsonElement? element, List<Tool> tools)
    {
        if (element is null or { ValueKind: JsonValueKind.Null }) return (ToolChoiceMode.Auto, null);
        var choice = element.Value;
        if (choice.ValueKind == JsonValueKind.String)
            return Check.Text(choice, "tool_choice") switch
            {
                "none" => (ToolChoiceMode.None, null),
                "auto" => (ToolChoiceMode.Auto, null),
                "required" => (ToolChoiceMode.Required, null),
                var other => throw ApiException.BadRequest($"tool_choice must be none, auto, required or a named function (got '{other}').", "tool_choice"),
            };
        Check.That(choice.ValueKind == JsonValueKind.Object && choice.TryGetProperty("type", out var type)
            && type.ValueKind == JsonValueKind.String && type.GetString() == "function", "tool_choice.type",
            "tool_choice must be a string or {\"type\": \"function\", \"function\": {\"name\": ...}}.");
        Check.That(choice.TryGetProperty("function", out var function) && function.ValueKind == JsonValueKind.Object
            && function.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String,
            "tool_choice.function.name", "tool_choice.function.name must be a string.");
        var named = Check.Text(function.GetProperty("name"), "tool_choice.function.name");
        Check.That(tools.Any(t => t.Name == named), "tool_choice.function.name", $"Tool '{named}' is not among the tools given.");
        return (ToolChoiceMode.Named, named);
    }

    /// The call's arguments: the function's parameters schema (any JSON object when it has none).
    static StructuredOutputsParams NamedConstraint(List<Tool> tools, string name)
    {
        var tool = tools.Single(t => t.Name == name);
        var spec = tool.Parameters is null ? new StructuredOutputsParams { JsonObject = true }
            : new StructuredOutputsParams { Json = tool.Parameters.ToJsonString() };
        StructuredOutputFields.Compile(spec, $"tools[{tool.Index}].function.parameters");
        return spec;
    }

    /// A JSON list of one or more {"name": <a tool>, "parameters": <its arguments>} (vLLM's format for
    /// "required"); one item at most when parallel_tool_calls is false.
    static StructuredOutputsParams RequiredConstraint(List<Tool> tools, bool parallel)
    {
        var alternatives = new JsonArray();
        foreach (var tool in tools)
        {
            var parameters = tool.Parameters?.DeepClone() ?? new JsonObject { ["type"] = "object" };
            // each tool's own schema compiles on its own first, so a refusal names the tool that has it
            StructuredOutputFields.Compile(new StructuredOutputsParams { Json = parameters.ToJsonString() }, $"tools[{tool.Index}].function.parameters");
            alternatives.Add(new JsonObject
            {
                ["type"] = "object",
                ["properties"] = new JsonObject { ["name"] = new JsonObject { ["const"] = tool.Name }, ["parameters"] = Relocated(parameters, tool.Index) },
                ["required"] = new JsonArray("name", "parameters"),
                ["additionalProperties"] = false,
            });
        }
        var schema = new JsonObject { ["type"] = "array", ["minItems"] = 1, ["items"] = new JsonObject { ["anyOf"] = alternatives } };
        if (!parallel) schema["maxItems"] = 1;
        var defs = new JsonObject();
        foreach (var tool in tools)
            if (tool.Parameters is JsonObject p && (p["$defs"] ?? p["definitions"]) is JsonObject own)
                foreach (var (key, value) in own) defs[$"t{tool.Index}_{key}"] = Relocated(value!.DeepClone(), tool.Index);
        if (defs.Count > 0) schema["$defs"] = defs;
        var spec = new StructuredOutputsParams { Json = schema.ToJsonString() };
        StructuredOutputFields.Compile(spec, "tools");
        return spec;
    }

    /// A tool's schema moved under the combined schema: its local references point at its renamed $defs.
    static JsonNode Relocated(JsonNode schema, int index)
    {
        switch (schema)
        {
            case JsonObject obj:
                var copy = new JsonObject();
                foreach (var (key, value) in obj)
                {
                    if (key is "$defs" or "definitions") continue;
                    copy[key] = key == "$ref" && value?.GetValueKind() == JsonValueKind.String
                        ? Rewrite(value.GetValue<string>(), index) : value is null ? null : Relocated(value.DeepClone(), index);
                }
                return copy;
            case JsonArray array:
                return new JsonArray([.. array.Select(item => item is null ? null : Relocated(item.DeepClone(), index))]);
            default:
                return schema.DeepClone();
        }
    }

    static string Rewrite(string reference, int index)
    {
        foreach (var prefix in new[] { "#/$defs/", "#/definitions/" })
            if (reference.StartsWith(prefix, StringComparison.Ordinal)) return $"#/$defs/t{index}_{reference[prefix.Length..]}";
        return reference;
    }
}
