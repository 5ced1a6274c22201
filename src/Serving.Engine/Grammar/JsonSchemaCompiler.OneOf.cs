using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Engine.Grammar;

// oneOf: a value valid under exactly one alternative. Each alternative is kept to values the others refuse where the
// compiler can see how: the two allow no common type or value, one requires a property the other forbids or keeps
// to disjoint values, or else the alternative is made to leave out a property another requires ({"oneOf":
// [{"required": ["a"]}, {"required": ["b"]}]}: the first written without "b", the second without "a"). Alternatives
// it cannot tell apart that way are read as anyOf, as vLLM's grammar backends read every oneOf.
internal sealed partial class JsonSchemaCompiler
{
    List<(JsonNode Schema, string Path)> Exclusive(List<(JsonNode Schema, string Path)> alternatives)
    {
        var views = alternatives.Select(a => View(a.Schema, a.Path)).ToList();
        var result = new List<(JsonNode Schema, string Path)>();
        for (var i = 0; i < alternatives.Count; i++)
        {
            var (schema, path) = alternatives[i];
            var forbidden = new JsonObject();
            for (var j = 0; j < alternatives.Count; j++)
            {
                if (j == i || Disjoint(views[i], views[j]) || Disjoint(views[j], views[i])) continue;
                var mine = RequiredOf(views[i]);
                if (RequiredOf(views[j]).FirstOrDefault(p => !mine.Contains(p)) is { } name) forbidden[name] = false;
            }
            result.Add(forbidden.Count == 0 ? (schema, path) : (Intersect(schema, new JsonObject { ["properties"] = forbidden }, path), path));
        }
        return result;
    }

    // an alternative as a plain object (a $ref's target inlined, one level) for the questions below; null for true
    JsonObject? View(JsonNode schema, string path) =>
        schema is JsonObject obj && obj["$ref"] is { } reference ? Dereference(obj, reference, path, 0) as JsonObject : schema as JsonObject;

    /// Whether no value valid under a is valid under b, by what the two say at their top: types, values, or a property
    /// a requires that b forbids or keeps to other values.
    static bool Disjoint(JsonObject? a, JsonObject? b)
    {
        if (a is null || b is null) return false;
        if (!TypesOf(a).Overlaps(TypesOf(b))) return true;
        if (ValuesOf(a) is { } these && ValuesOf(b) is { } those && !these.Any(v => those.Any(w => JsonNode.DeepEquals(v, w)))) return true;
        foreach (var name in RequiredOf(a))
        {
            var theirs = PropertySchema(b, name);
            if (IsFalse(theirs)) return true;
            if (PropertySchema(a, name) is JsonObject mineSchema && theirs is JsonObject theirSchema && Disjoint(mineSchema, theirSchema)) return true;
        }
        return false;
    }

    // the types a schema's top allows ("integer" beside "number" for a number), from its type or its values
    static HashSet<string> TypesOf(JsonObject schema)
    {
        if (ValuesOf(schema) is { } values)
            return values.SelectMany(v => TypeOf(v) == "number" ? (IsWhole(v) ? new[] { "number", "integer" } : ["number"]) : [TypeOf(v)]).ToHashSet();
        if (schema["type"] is not { } type) return [.. AllTypes];
        var names = TypeNames(type, "#").ToHashSet();
        if (names.Contains("integer")) names.Add("number");   // an integer is a number: they overlap
        return names;
    }

    static List<JsonNode?>? ValuesOf(JsonObject schema) =>
        schema.ContainsKey("const") ? [schema["const"]] : schema["enum"] is JsonArray values ? [.. values] : null;

    static HashSet<string> RequiredOf(JsonObject? schema) =>
        schema?["required"] is JsonArray names ? names.Where(n => n?.GetValueKind() == JsonValueKind.String).Select(n => n!.GetValue<string>()).ToHashSet() : [];

    // what a schema's top says of a property: its declared schema, or false where additionalProperties false leaves
    // it out; null where it says nothing the checks above read
    static JsonNode? PropertySchema(JsonObject schema, string name)
    {
        if (schema["properties"] is JsonObject properties && properties.TryGetPropertyValue(name, out var declared)) return declared;
        return schema["patternProperties"] is null && IsFalse(schema["additionalProperties"]) ? JsonValue.Create(false) : null;
    }
}
