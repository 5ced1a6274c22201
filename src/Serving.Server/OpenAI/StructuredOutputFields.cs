using System.Text.Json;
using Serving.Engine;
using Serving.Engine.Grammar;
using Serving.Server.Errors;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI;

/// Reads the constraint a request puts on its output: OpenAI's response_format (json_object, json_schema),
/// vLLM's structured_outputs object (json, regex, choice, json_object) or its older guided_json /
/// guided_regex / guided_choice. At most one may be given. The constraint is compiled here (and cached), so
/// a schema the compiler refuses is a 400 naming the field it came in.
internal static class StructuredOutputFields
{
    static readonly HashSet<string> StructuredOutputKeys = ["json", "regex", "choice", "grammar", "json_object"];

    public static StructuredOutputsParams? Read(SamplingRequest request)
    {
        var found = new List<(StructuredOutputsParams Spec, string Param)>();
        if (ResponseFormat(request.ResponseFormat) is { } format) found.Add(format);
        if (StructuredOutputs(request.StructuredOutputs) is { } structured) found.Add(structured);
        if (!IsAbsent(request.GuidedJson)) found.Add((new StructuredOutputsParams { Json = SchemaText(request.GuidedJson!.Value, "guided_json") }, "guided_json"));
        if (!IsAbsent(request.GuidedRegex)) found.Add((new StructuredOutputsParams { Regex = String(request.GuidedRegex!.Value, "guided_regex") }, "guided_regex"));
        if (!IsAbsent(request.GuidedChoice)) found.Add((new StructuredOutputsParams { Choice = Choices(request.GuidedChoice!.Value, "guided_choice") }, "guided_choice"));
        if (!IsAbsent(request.GuidedGrammar)) found.Add((new StructuredOutputsParams { Grammar = String(request.GuidedGrammar!.Value, "guided_grammar") }, "guided_grammar"));
        Check.That(found.Count <= 1, found.Count > 1 ? found[1].Param : "response_format",
            $"Only one output constraint may be given (got {string.Join(", ", found.Select(f => f.Param))}).");
        if (found.Count == 0) return null;
        Compile(found[0].Spec, found[0].Param);
        return found[0].Spec;
    }

    /// Compiles the constraint (through the engine's cache); a refusal becomes a 400 naming param.
    public static void Compile(StructuredOutputsParams spec, string param)
    {
        try
        {
            spec.Validate();
        }
        catch (InvalidRequestException error)
        {
            throw ApiException.BadRequest($"Invalid {param}: {error.Message}", param);
        }
    }

    static (StructuredOutputsParams, string)? ResponseFormat(JsonElement? format)
    {
        if (IsAbsent(format)) return null;
        var value = format!.Value;
        Check.That(value.ValueKind == JsonValueKind.Object, "response_format", "response_format must be an object.");
        var type = value.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? Check.Text(t, "response_format.type") : null;
        switch (type)
        {
            case "text":
                return null;
            case "json_object":
                return (new StructuredOutputsParams { JsonObject = true }, "response_format");
            case "json_schema":
                Check.That(value.TryGetProperty("json_schema", out var jsonSchema) && jsonSchema.ValueKind == JsonValueKind.Object,
                    "response_format.json_schema", "response_format.json_schema must be an object with name and schema.");
                Check.That(jsonSchema.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String
                    && System.Text.RegularExpressions.Regex.IsMatch(Check.Text(name, "response_format.json_schema.name"), "^[a-zA-Z0-9_-]{1,64}$"),
                    "response_format.json_schema.name", "response_format.json_schema.name must be 1-64 letters, digits, '_' or '-'.");
                if (!jsonSchema.TryGetProperty("schema", out var schema) || schema.ValueKind == JsonValueKind.Null)
                    return (new StructuredOutputsParams { JsonObject = true }, "response_format.json_schema.schema");
                return (new StructuredOutputsParams { Json = SchemaText(schema, "response_format.json_schema.schema") },
                    "response_format.json_schema.schema");
            default:
                throw ApiException.BadRequest("response_format.type must be one of text, json_object, json_schema.", "response_format.type");
        }
    }

    static (StructuredOutputsParams, string)? StructuredOutputs(JsonElement? element)
    {
        if (IsAbsent(element)) return null;
        var value = element!.Value;
        Check.That(value.ValueKind == JsonValueKind.Object, "structured_outputs", "structured_outputs must be an object.");
        var given = value.EnumerateObject().Where(p => p.Value.ValueKind != JsonValueKind.Null && !(p.Value.ValueKind == JsonValueKind.False)).ToList();
        foreach (var property in given)
            Check.That(StructuredOutputKeys.Contains(property.Name), $"structured_outputs.{property.Name}",
                $"structured_outputs.{property.Name} is not supported (supported: {string.Join(", ", StructuredOutputKeys)}).");
        Check.That(given.Count == 1, "structured_outputs", "structured_outputs needs exactly one of json, regex, choice, grammar, json_object.");
        var (key, item) = (given[0].Name, given[0].Value);
        var param = $"structured_outputs.{key}";
        var spec = key switch
        {
            "json" => new StructuredOutputsParams { Json = SchemaText(item, param) },
            "regex" => new StructuredOutputsParams { Regex = String(item, param) },
            "choice" => new StructuredOutputsParams { Choice = Choices(item, param) },
            "grammar" => new StructuredOutputsParams { Grammar = String(item, param) },
            _ => item.ValueKind == JsonValueKind.True ? new StructuredOutputsParams { JsonObject = true }
                : throw ApiException.BadRequest($"{param} must be true.", param),
        };
        return (spec, param);
    }

    /// A schema given as an object (or a boolean), or as a string holding one (vLLM accepts both).
    static string SchemaText(JsonElement schema, string param) => schema.ValueKind switch
    {
        JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False => schema.GetRawText(),
        JsonValueKind.String => Check.Text(schema, param),
        _ => throw ApiException.BadRequest($"{param} must be a JSON Schema object.", param),
    };

    static string String(JsonElement value, string param) =>
        value.ValueKind == JsonValueKind.String ? Check.Text(value, param) : throw ApiException.BadRequest($"{param} must be a string.", param);

    static IReadOnlyList<string> Choices(JsonElement value, string param)
    {
        Check.That(value.ValueKind == JsonValueKind.Array && value.GetArrayLength() > 0, param, $"{param} must be a non-empty list of strings.");
        return value.EnumerateArray().Select(c => String(c, param)).ToList();
    }

    static bool IsAbsent(JsonElement? element) => element is null or { ValueKind: JsonValueKind.Null or JsonValueKind.Undefined };
}
