using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Engine.Grammar;

// Conditions (dependencies: "if this property is there, then ...") and negations ("not ..."), written as keywords the
// compiler builds where that keeps every text valid: a dependency held always (when its property may be written at
// all), "not" of required names as one name left out, "not" of types as the other types. Other forms are refused.
internal sealed partial class JsonSchemaCompiler
{
    static readonly string[] Dependencies = ["dependencies", "dependentRequired", "dependentSchemas"];

    static bool HasConditions(JsonObject schema) => schema.ContainsKey("not") || Dependencies.Any(schema.ContainsKey);

    /// The schema without its dependencies and "not": each dependency whose property may be written at all holds
    /// always (its names required, its schema intersected: more than asked, never less), one whose property cannot
    /// be written is dropped; "not" as below.
    JsonNode Lowered(JsonObject schema, string path)
    {
        JsonNode result = new JsonObject([.. schema.Where(p => p.Key != "not" && !Dependencies.Contains(p.Key)).Select(Clone)]);
        foreach (var keyword in Dependencies)
        {
            if (schema[keyword] is null) continue;
            if (schema[keyword] is not JsonObject dependencies) throw new GrammarException($"{path}/{keyword} must be an object");
            foreach (var (name, dependency) in dependencies)
            {
                if (!MayBeWritten(schema, name)) continue;
                var demand = dependency is JsonArray names ? new JsonObject { ["required"] = names.DeepClone() } : dependency;
                result = Intersect(result, demand, $"{path}/{keyword}/{name}");
            }
        }
        if (schema["not"] is { } not) result = Intersect(result, Negated(not, schema, $"{path}/not"), path);
        return result;
    }

    /// A schema for the values `not` leaves, as far as the compiler writes them: not {"required": names} as the
    /// last of those names the schema does not require left out; not {"type": ...} as the other types; not {"anyOf":
    /// [...]} as each alternative's negation at once; not {"$ref": ...} as its target's; not true as false; not false
    /// as true.
    JsonNode Negated(JsonNode not, JsonObject schema, string path, int depth = 0)
    {
        if (depth > MaxIntersectionDepth) throw new GrammarException($"'not' at {path} refers to itself");
        if (IsFalse(not)) return JsonValue.Create(true);
        if (IsTrivial(not)) return JsonValue.Create(false);
        if (not is not JsonObject negated) throw new GrammarException($"{path} must be a schema");
        var constraints = negated.Where(p => Constrains(p.Key, p.Value)).Select(p => p.Key).ToList();
        if (constraints is ["$ref"] && negated["$ref"] is { } reference)
            return Negated(Dereference(negated, reference, path, 0), schema, path, depth + 1);
        if (constraints is ["anyOf"] && negated["anyOf"] is JsonArray alternatives)
            return alternatives.Select((alternative, i) => Negated(alternative ?? JsonValue.Create(true), schema, $"{path}/anyOf/{i}", depth + 1))
                .Aggregate((JsonNode)JsonValue.Create(true), (all, next) => Intersect(all, next, path));
        if (constraints is ["required"])
        {
            var required = StringList(schema["required"], path).ToHashSet();
            var names = StringList(negated["required"], $"{path}/required");
            if (names.LastOrDefault(n => !required.Contains(n)) is not { } leftOut) return JsonValue.Create(false);
            return new JsonObject { ["properties"] = new JsonObject { [leftOut] = false } };
        }
        if (constraints is ["type"])
        {
            var types = TypeNames(negated["type"], path).ToHashSet();
            if (types.Contains("integer") && !types.Contains("number"))
                throw new GrammarException($"'not' at {path}: numbers that are not integers are not supported");
            return new JsonObject { ["type"] = new JsonArray([.. AllTypes.Except(types).Select(t => (JsonNode?)t)]) };
        }
        throw new GrammarException($"'not' at {path} is supported only over required names or types");
    }

    // whether an object under this schema may hold the key: declared, or matched by a pattern, or allowed as an
    // undeclared member (more often true than it is: a dependency held when it need not be only asks more)
    static bool MayBeWritten(JsonObject schema, string name)
    {
        if (schema["properties"] is JsonObject properties && properties.ContainsKey(name)) return true;
        if (StringList(schema["required"], "#").Contains(name) || schema["patternProperties"] is JsonObject { Count: > 0 }) return true;
        var additional = schema["additionalProperties"];
        return additional is null ? schema["properties"] is not JsonObject { Count: > 0 } : !IsFalse(additional);
    }
}
