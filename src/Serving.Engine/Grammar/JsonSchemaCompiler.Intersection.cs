using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Engine.Grammar;

// One schema meaning "both": what allOf, a combinator's siblings and $ref's siblings ask of a value. Built keyword
// by keyword where the meaning of both is itself a keyword (required lists joined, bounds tightened, types and enums
// intersected, property schemas intersected in turn); refused, naming the keyword, where it is not (two patterns).
internal sealed partial class JsonSchemaCompiler
{
    /// $refs followed while intersecting at most this deep (a chain of references that refers back to itself).
    const int MaxIntersectionDepth = 32;

    static readonly HashSet<string> Lower = ["minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"];
    static readonly HashSet<string> Upper = ["maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"];

    /// A schema valid exactly where both are (false where no value is).
    JsonNode Intersect(JsonNode? a, JsonNode? b, string path, int depth = 0)
    {
        try
        {
            return IntersectOrThrow(a, b, path, depth);
        }
        catch (NoValue)
        {
            return JsonValue.Create(false);
        }
    }

    JsonNode IntersectOrThrow(JsonNode? a, JsonNode? b, string path, int depth)
    {
        if (depth > MaxIntersectionDepth) throw new GrammarException($"$ref at {path} refers to itself through its siblings");
        if (IsFalse(a) || IsFalse(b)) return JsonValue.Create(false);
        if (IsTrivial(a)) return b?.DeepClone() ?? JsonValue.Create(true);
        if (IsTrivial(b) || JsonNode.DeepEquals(a, b)) return a!.DeepClone();
        if (a is not JsonObject left || b is not JsonObject right) throw new GrammarException($"the schema at {path} must be an object or a boolean");
        // a $ref stays a $ref (compiled as a rule, Reference) unless a keyword of both needs its target's own
        var shared = left.Any(p => Constrains(p.Key, p.Value) && right.TryGetPropertyValue(p.Key, out var other) && Constrains(p.Key, other));
        if (shared && left["$ref"] is { } leftRef) return Intersect(Dereference(left, leftRef, path, depth), right, path, depth + 1);
        if (shared && right["$ref"] is { } rightRef) return Intersect(left, Dereference(right, rightRef, path, depth), path, depth + 1);

        var merged = new JsonObject();
        foreach (var (keyword, value) in left) merged[keyword] = value?.DeepClone();
        foreach (var (keyword, value) in right)
        {
            if (!merged.TryGetPropertyValue(keyword, out var existing)) merged[keyword] = value?.DeepClone();
            else if (Constrains(keyword, value) && !JsonNode.DeepEquals(existing, value)) merged[keyword] = Both(keyword, existing, value, path, depth);
        }
        AdditionalNames(merged, left, right, path, depth);
        AdditionalNames(merged, right, left, path, depth);
        AdditionalPatterns(merged, left, right, path, depth);
        AdditionalPatterns(merged, right, left, path, depth);
        return RestrictValues(merged, path);
    }

    /// A $ref beside other keywords: its target and those keywords intersected.
    JsonNode Dereference(JsonObject schema, JsonNode reference, string path, int depth)
    {
        var target = reference.GetValueKind() == JsonValueKind.String ? reference.GetValue<string>() : null;
        if (target is null || !target.StartsWith('#'))
            throw new GrammarException($"$ref at {path} must be a local reference (\"#/$defs/Name\")");
        var siblings = new JsonObject([.. schema.Where(p => p.Key != "$ref").Select(Clone)]);
        return Intersect(ResolvePointer(target, path), siblings, path, depth + 1);
    }

    /// The value of a keyword both schemas give, differently, meaning both.
    JsonNode? Both(string keyword, JsonNode? a, JsonNode? b, string path, int depth)
    {
        if (Lower.Contains(keyword) || Upper.Contains(keyword))
        {
            var (x, y) = (Bound(a, keyword, path), Bound(b, keyword, path));
            return (Lower.Contains(keyword) ? x >= y : x <= y) ? a!.DeepClone() : b!.DeepClone();
        }
        switch (keyword)
        {
            case "required":
                return new JsonArray([.. StringList(a, $"{path}/required").Union(StringList(b, $"{path}/required")).Select(n => (JsonNode?)n)]);
            case "type":
                return new JsonArray([.. TypeNames(a, path).Intersect(TypeNames(b, path)).Select(n => (JsonNode?)n)]);
            case "items" or "additionalProperties":
                return Intersect(a, b, $"{path}/{keyword}", depth + 1);
            case "properties" or "patternProperties":
                if (a is not JsonObject left || b is not JsonObject right) throw new GrammarException($"{path}/{keyword} must be an object");
                var joined = new JsonObject();
                foreach (var (name, schema) in left)
                    joined[name] = right.TryGetPropertyValue(name, out var other) ? Intersect(schema, other, $"{path}/{keyword}/{name}", depth + 1) : schema?.DeepClone();
                foreach (var (name, schema) in right) joined.TryAdd(name, schema?.DeepClone());
                return joined;
            case "enum":
                if (a is not JsonArray these || b is not JsonArray those) throw new GrammarException($"{path}/enum must be a list");
                var common = these.Where(v => those.Any(w => JsonNode.DeepEquals(v, w))).Select(v => v?.DeepClone()).ToList();
                return common.Count > 0 ? new JsonArray([.. common]) : throw new NoValue();
            case "const":
                throw new NoValue();   // two different values
            default:
                throw new GrammarException($"'{keyword}' at {path} given twice with different values where both apply (allOf, a $ref or combinator's siblings) is not supported");
        }
    }

    static double Bound(JsonNode? node, string keyword, string path) =>
        node?.GetValueKind() == JsonValueKind.Number ? node.GetValue<double>() : throw new GrammarException($"{path}/{keyword} must be a number");

    static IEnumerable<string> TypeNames(JsonNode? type, string path)
    {
        var names = type is JsonArray list ? list.Select(t => t?.ToString() ?? "") : [type?.ToString() ?? ""];
        // an integer is a number: "number" beside "integer" keeps the integers
        return names.SelectMany(n => n == "number" ? new[] { "number", "integer" } : [n]).Distinct();
    }

    static KeyValuePair<string, JsonNode?> Clone(KeyValuePair<string, JsonNode?> p) => new(p.Key, p.Value?.DeepClone());

    /// Thrown where the two schemas leave no value: Intersect's answer is then false.
    sealed class NoValue : Exception;

    /// Where one side declares a property the other does not, the other's additionalProperties (or a pattern of its
    /// patternProperties that matches the name) applies to it too: its schema joins the property's.
    void AdditionalNames(JsonObject merged, JsonObject declaring, JsonObject other, string path, int depth)
    {
        if (declaring["properties"] is not JsonObject declared || merged["properties"] is not JsonObject properties) return;
        var otherNames = other["properties"] as JsonObject;
        var patterns = other["patternProperties"] is JsonObject p
            ? p.Select(e => KeyPatternOf(e.Key, e.Value, $"{path}/patternProperties/{e.Key}")).ToList() : [];
        foreach (var (name, _) in declared)
        {
            if (otherNames?.ContainsKey(name) == true) continue;
            var key = JsonGrammar.KeyText(name);
            var matching = patterns.Where(k => RegularLanguage.Intersect(k.Applies, key)).Select(k => k.Schema).ToList();
            if (matching.Count == 0 && other["additionalProperties"] is { } additional) matching.Add(additional);
            foreach (var schema in matching)
                properties[name] = Intersect(properties[name], schema, $"{path}/properties/{name}", depth + 1);
        }
    }

    /// A pattern one side has and the other has not: keys matching it are, for the other, additional ones (unless a
    /// pattern of its own matches them too, when taking its additionalProperties as well only asks more): the
    /// pattern's schema joins the other's additionalProperties.
    void AdditionalPatterns(JsonObject merged, JsonObject declaring, JsonObject other, string path, int depth)
    {
        if (declaring["patternProperties"] is not JsonObject declared || other["additionalProperties"] is not { } additional
            || merged["patternProperties"] is not JsonObject patterns) return;
        var theirs = other["patternProperties"] as JsonObject;
        foreach (var (pattern, _) in declared)
            if (theirs?.ContainsKey(pattern) != true)
                patterns[pattern] = Intersect(patterns[pattern], additional, $"{path}/patternProperties/{pattern}", depth + 1);
    }

    /// A schema's enum or const kept to the values its type and its other enum or const allow (NoValue when none
    /// is left): the compiler writes an enum's values as they are, so they must be valid.
    static JsonObject RestrictValues(JsonObject schema, string path)
    {
        if (schema["type"] is JsonArray { Count: 0 }) throw new NoValue();
        var types = schema["type"] is { } type ? TypeNames(type, path).ToHashSet() : null;
        bool Allowed(JsonNode? value) =>
            (types is null || types.Contains(TypeOf(value)) || types.Contains("integer") && IsWhole(value))
            && (!schema.ContainsKey("const") || JsonNode.DeepEquals(value, schema["const"]))
            && (schema["enum"] is not JsonArray values || values.Any(v => JsonNode.DeepEquals(v, value)));
        if (schema.ContainsKey("const"))
        {
            if (!Allowed(schema["const"])) throw new NoValue();
            schema.Remove("enum");
        }
        else if (schema["enum"] is JsonArray values && values.Any(v => !Allowed(v)))
        {
            var kept = values.Where(Allowed).Select(v => v?.DeepClone()).ToList();
            schema["enum"] = kept.Count > 0 ? new JsonArray([.. kept]) : throw new NoValue();
        }
        return schema;
    }

    // an enum or const beside a type, or beside each other: RestrictValues on a copy, refused where nothing is left
    static JsonObject ValuesItAllows(JsonObject schema, string path)
    {
        try
        {
            return RestrictValues((JsonObject)schema.DeepClone(), path);
        }
        catch (NoValue)
        {
            throw new GrammarException($"the schema at {path} allows no value: no value of its enum or const is of its type");
        }
    }

    // false, or an enum or const none of whose values is of its type
    static bool AllowsNoValue(JsonNode? schema)
    {
        if (IsFalse(schema)) return true;
        if (schema is not JsonObject obj || !(obj.ContainsKey("enum") || obj.ContainsKey("const"))) return false;
        try
        {
            RestrictValues((JsonObject)obj.DeepClone(), "#");
            return false;
        }
        catch (NoValue)
        {
            return true;
        }
    }

    // the JSON type name of a value ("number" for every number)
    static string TypeOf(JsonNode? value) => value?.GetValueKind() switch
    {
        null or JsonValueKind.Null => "null",
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        _ => "boolean",
    };

    static bool IsWhole(JsonNode? value) => value?.GetValueKind() == JsonValueKind.Number && value.GetValue<double>() is var d && d == Math.Floor(d);

    static bool IsFalse(JsonNode? schema) => schema is JsonValue value && value.TryGetValue<bool>(out var allowed) && !allowed;
}
