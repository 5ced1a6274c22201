using System.Runtime.CompilerServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using static Serving.Engine.Grammar.GrammarExpr;

namespace Serving.Engine.Grammar;

/// Compiles a JSON Schema into a byte grammar whose sentences are JSON texts (in our layout) the schema accepts:
/// every text it allows is valid; where the schema's meaning is more than a grammar of this form can say exactly,
/// the grammar allows fewer texts (undeclared members only where additionalProperties allows them explicitly, and
/// never under a declared name) or the schema is refused. Supported (README): type (one or a list), properties,
/// required, additionalProperties, patternProperties, enum, const, items, minItems, maxItems, anyOf, oneOf (its
/// alternatives kept apart where the compiler sees how: JsonSchemaCompiler.OneOf.cs), allOf and the siblings of a
/// combinator or a $ref (intersected: JsonSchemaCompiler.Intersection.cs), $ref to any "#/..." pointer ($defs,
/// definitions, "#"), string minLength / maxLength / pattern / format, integer minimum / maximum / exclusiveMinimum /
/// exclusiveMaximum, number minimum / maximum (whole numbers). A keyword JSON Schema defines as a constraint that the
/// compiler does not build (Unsupported: if, propertyNames, multipleOf, ...) is refused with its path, never silently
/// ignored; any other keyword is an annotation and ignored, as the specification says of keywords it does not define
/// (title, description, examples, a draft-04 "id", "x-" extensions, OpenAPI's "nullable", ...), and as vLLM's backends
/// do. Properties come out in the schema's order.
internal sealed partial class JsonSchemaCompiler
{
    static readonly HashSet<string> Unsupported =
    [
        "if", "then", "else", "propertyNames", "unevaluatedProperties", "prefixItems", "contains", "minContains",
        "maxContains", "unevaluatedItems", "multipleOf", "$dynamicRef", "$recursiveRef",
    ];

    static readonly HashSet<string> Applicators =
    [
        "type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "not", "dependencies", "dependentRequired",
        "dependentSchemas", "properties", "required", "additionalProperties", "patternProperties", "minProperties",
        "maxProperties", "items", "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern", "format", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum",
    ];

    static readonly JsonSerializerOptions LiteralJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    readonly JsonNode _document;
    readonly GrammarRules _rules = new();
    readonly Dictionary<string, int> _refRules = [];
    readonly List<(int Rule, JsonNode? Schema, string Path)> _pendingRefs = [];
    int? _anyValue;

    JsonSchemaCompiler(JsonNode document) => _document = document;

    /// The grammar of the JSON texts valid under the schema (given as JSON text). Throws GrammarException
    /// naming the offending keyword's path ("#/properties/age/minimum").
    public static (GrammarRules Rules, int Root) Compile(string schemaJson)
    {
        JsonNode? document;
        try
        {
            document = JsonNode.Parse(schemaJson);
        }
        catch (Exception error) when (error is JsonException or ArgumentException)
        {
            throw new GrammarException($"the schema is not valid JSON: {error.Message}");
        }
        if (document is null) throw new GrammarException("the schema must be an object or a boolean, not null");
        var compiler = new JsonSchemaCompiler(document);
        var root = compiler._rules.Declare("root");
        compiler._rules.Define(root, compiler.Schema(document, "#"));
        compiler.DefinePendingRefs();
        return (compiler._rules, root);
    }

    /// Any JSON object (response_format json_object).
    public static (GrammarRules Rules, int Root) AnyObject()
    {
        var rules = new GrammarRules();
        var root = rules.Declare("root");
        var value = JsonGrammar.DefineAnyValue(rules);
        rules.Define(root, JsonGrammar.Object(new RuleExpr(value)));
        return (rules, root);
    }

    GrammarExpr Schema(JsonNode? schema, string path)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();   // a schema nested past what the compiler's recursion takes: refused
        switch (schema)
        {
            case JsonValue value when value.TryGetValue<bool>(out var allowed):
                return allowed ? AnyValue() : throw new GrammarException($"the schema at {path} is false: it allows no value");
            case JsonObject node:
                return ObjectSchema(node, path);
            default:
                throw new GrammarException($"the schema at {path} must be an object or a boolean");
        }
    }

    GrammarExpr ObjectSchema(JsonObject schema, string path)
    {
        foreach (var (keyword, value) in schema)
            if (Unsupported.Contains(keyword) && !IsNoOp(keyword, value))
                throw new GrammarException($"unsupported JSON Schema keyword '{keyword}' at {path}");
        if (HasConditions(schema)) return Schema(Lowered(schema, path), path);
        if (schema["$ref"] is { } reference) return Reference(schema, reference, path);
        if ((schema.ContainsKey("enum") || schema.ContainsKey("const")) && (schema.ContainsKey("type") || schema.ContainsKey("enum") && schema.ContainsKey("const")))
            schema = ValuesItAllows(schema, path);
        if (schema["enum"] is { } values) return Enum(values, $"{path}/enum");
        if (schema.ContainsKey("const")) return Literal(Serialize(schema["const"]));
        foreach (var combinator in new[] { "anyOf", "oneOf", "allOf" })
            if (schema[combinator] is { } alternatives) return Combination(schema, combinator, alternatives, path);
        var types = Types(schema, path);
        return Choice([.. types.Select(type => Typed(schema, type, path))]);
    }

    GrammarExpr Reference(JsonObject schema, JsonNode reference, string path)
    {
        var target = reference.GetValueKind() == JsonValueKind.String ? reference.GetValue<string>() : null;
        if (target is null || !target.StartsWith('#'))
            throw new GrammarException($"$ref at {path} must be a local reference (\"#/$defs/Name\")");
        // beside other constraints: the target and those intersected, one rule per target and siblings (so that a
        // recursive schema refers back to the rule instead of inlining itself forever)
        var siblings = schema.Where(p => p.Key != "$ref" && Constrains(p.Key, p.Value)).ToList();
        var key = siblings.Count == 0 ? target : $"{target} & {new JsonObject([.. siblings.Select(Clone)]).ToJsonString()}";
        if (!_refRules.TryGetValue(key, out var rule))
        {
            rule = _rules.Declare(key);
            _refRules.Add(key, rule);
            _pendingRefs.Add((rule, siblings.Count == 0 ? ResolvePointer(target, path) : Dereference(schema, reference, path, depth: 0), target));
        }
        return new RuleExpr(rule);
    }

    JsonNode? ResolvePointer(string target, string path)
    {
        JsonNode? node = _document;
        foreach (var raw in target.TrimStart('#').Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            var part = Uri.UnescapeDataString(raw).Replace("~1", "/").Replace("~0", "~");
            node = node switch
            {
                JsonObject obj when obj.ContainsKey(part) => obj[part],
                JsonArray array when int.TryParse(part, out var i) && i >= 0 && i < array.Count => array[i],
                _ => throw new GrammarException($"$ref '{target}' at {path} points to nothing in the schema"),
            };
        }
        return node;
    }

    void DefinePendingRefs()
    {
        // a definition may add references of its own while it compiles
        for (var i = 0; i < _pendingRefs.Count; i++)
        {
            var (rule, schema, target) = _pendingRefs[i];
            _rules.Define(rule, Schema(schema, target));
        }
    }

    GrammarExpr Enum(JsonNode values, string path)
    {
        if (values is not JsonArray { Count: > 0 } list)
            throw new GrammarException($"{path} must be a non-empty list");
        return Choice([.. list.Select(v => Literal(Serialize(v))).Distinct()]);
    }

    /// anyOf / oneOf: each alternative intersected with the keywords beside the combinator (so {"type": "object",
    /// "anyOf": [{"properties": ...}]} works); oneOf's alternatives kept apart where the compiler sees how (Exclusive).
    /// allOf: all of its schemas and the keywords beside it intersected into one.
    GrammarExpr Combination(JsonObject schema, string combinator, JsonNode alternatives, string path)
    {
        if (alternatives is not JsonArray { Count: > 0 } list)
            throw new GrammarException($"{path}/{combinator} must be a non-empty list of schemas");
        if (schema.ContainsKey("anyOf") && schema.ContainsKey("oneOf"))
            throw new GrammarException($"anyOf together with oneOf at {path} is not supported");
        var siblings = new JsonObject([.. schema.Where(p => p.Key != combinator && Constrains(p.Key, p.Value)).Select(Clone)]);
        if (combinator == "allOf")
            return Schema(list.Select((item, i) => (item, i)).Aggregate((JsonNode)siblings,
                (all, next) => Intersect(all, next.item, $"{path}/allOf/{next.i}")), path);
        var met = list.Select((alternative, i) => (Schema: Intersect(siblings, alternative, $"{path}/{combinator}/{i}"), Path: $"{path}/{combinator}/{i}"))
            .Where(a => !IsFalse(a.Schema)).ToList();
        if (met.Count == 0) throw new GrammarException($"no alternative of {path}/{combinator} allows a value");
        if (combinator == "oneOf") met = Exclusive(met);
        return Choice([.. met.Select(a => Schema(a.Schema, a.Path))]);
    }

    // whether a keyword says something of the value: one the compiler builds, or one it refuses
    static bool Constrains(string keyword, JsonNode? value) =>
        Applicators.Contains(keyword) || Unsupported.Contains(keyword) && !IsNoOp(keyword, value);

    // the values of an unsupported keyword that constrain nothing (minContains 0)
    static bool IsNoOp(string keyword, JsonNode? value) => (keyword, value?.GetValueKind()) switch
    {
        ("minContains", JsonValueKind.Number) => value!.GetValue<double>() == 0,
        _ => false,
    };

    static readonly string[] AllTypes = ["object", "array", "string", "number", "integer", "boolean", "null"];

    static IReadOnlyList<string> Types(JsonObject schema, string path)
    {
        var type = schema["type"];
        if (type is null)
        {
            if (new[] { "properties", "additionalProperties", "patternProperties", "required", "minProperties", "maxProperties" }.Any(schema.ContainsKey)) return ["object"];
            if (schema.ContainsKey("items") || schema.ContainsKey("minItems") || schema.ContainsKey("maxItems")) return ["array"];
            if (schema.ContainsKey("pattern") || schema.ContainsKey("format") || schema.ContainsKey("minLength") || schema.ContainsKey("maxLength")) return ["string"];
            if (schema.ContainsKey("minimum") || schema.ContainsKey("maximum")) return ["number"];
            return AllTypes;
        }
        var names = type is JsonArray array ? array.Select(t => t?.GetValueKind() == JsonValueKind.String ? t.GetValue<string>() : null).ToList()
            : type.GetValueKind() == JsonValueKind.String ? [type.GetValue<string>()] : [null];
        if (names.Count == 0 || names.Any(n => n is null || !AllTypes.Contains(n)))
            throw new GrammarException($"{path}/type must be one of {string.Join(", ", AllTypes)} or a list of them");
        var distinct = names.Select(n => n!).Distinct().ToList();
        // an integer is also a number: drop "integer" beside "number" so that one text has one path
        return distinct.Contains("number") ? distinct.Where(n => n != "integer").ToList() : distinct;
    }

    GrammarExpr Typed(JsonObject schema, string type, string path) => type switch
    {
        "object" => ObjectType(schema, path),
        "array" => ArrayType(schema, path),
        "string" => StringType(schema, path),
        "integer" => IntegerType(schema, path),
        "number" => NumberType(schema, path),
        "boolean" => JsonGrammar.Boolean(),
        _ => Literal("null"),
    };

    GrammarExpr AnyValue() => new RuleExpr(_anyValue ??= JsonGrammar.DefineAnyValue(_rules));

    /// A subschema as its own rule: large or repeated schemas are then built once and called.
    GrammarExpr SubschemaRule(JsonNode? schema, string path)
    {
        var rule = _rules.Declare(path);
        _rules.Define(rule, Schema(schema, path));
        return new RuleExpr(rule);
    }

    static string Serialize(JsonNode? value) => value is null ? "null" : value.ToJsonString(LiteralJson);
}
