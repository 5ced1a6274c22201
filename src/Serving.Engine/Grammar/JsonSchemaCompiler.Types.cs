using System.Text.Json;
using System.Text.Json.Nodes;
using static Serving.Engine.Grammar.GrammarExpr;

namespace Serving.Engine.Grammar;

// The grammar of each JSON type under its keywords.
internal sealed partial class JsonSchemaCompiler
{
    /// RFC 3339 full-date, with each month's length and February 29th only in leap years (validators check), and
    /// years 0001-9999: validators parse the date with their platform's date type, which has no year 0.
    const string Year = @"(\d{3}[1-9]|\d\d[1-9]\d|\d[1-9]\d\d|[1-9]\d{3})";

    const string Date = "(" + Year + @"-(0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|" + Year + @"-(0[469]|11)-(0[1-9]|[12]\d|30)|" + Year +
        @"-02-(0[1-9]|1\d|2[0-8])|(\d\d(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)-02-29)";

    const string Time = @"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)";

    static readonly Dictionary<string, string> Formats = new()
    {
        ["date"] = Date,
        ["time"] = Time,
        ["date-time"] = Date + "T" + Time,
        ["uuid"] = @"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        ["email"] = @"[A-Za-z0-9_%+-]{1,32}(\.[A-Za-z0-9_%+-]{1,32}){0,3}@" + Label + @"(\." + Label + @"){0,6}\.[A-Za-z]{2,24}",
        ["ipv4"] = @"((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)",
        ["hostname"] = Label + @"(\." + Label + ")*",
        ["uri"] = Scheme + UriCharacter + "+",
        ["uri-reference"] = "(" + Scheme + UriCharacter + "*|" + SegmentCharacter + @"*([/?#]" + UriCharacter + "*)?)",
    };

    /// The formats JSON Schema defines that Formats does not build: refused, where a format it does not define is an
    /// annotation and ignored (the string is any string).
    static readonly HashSet<string> StandardFormats =
    [
        "duration", "idn-email", "idn-hostname", "ipv6", "iri", "iri-reference", "uri-template", "json-pointer",
        "relative-json-pointer", "regex",
    ];

    // RFC 1123 host label, without two hyphens in a row (IDNA reserves "ab--" labels: validators refuse them); RFC
    // 3986 scheme
    const string Label = @"[A-Za-z0-9](-?[A-Za-z0-9]){0,31}";
    const string Scheme = @"[A-Za-z][A-Za-z0-9+.-]+:";   // two characters or more: "c:" reads as a drive to some validators
    // unreserved, the reserved characters a path, query or fragment spells, or a %-escape (RFC 3986; '[' and ']' only
    // belong in an IP literal host, left out)
    const string UriCharacter = @"([A-Za-z0-9._~:/?#@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})";
    // what a relative reference's first path segment spells: no ':' (it would read as a scheme) and no '/', '?', '#'
    const string SegmentCharacter = @"([A-Za-z0-9._~@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})";

    GrammarExpr ArrayType(JsonObject schema, string path)
    {
        var (minItems, maxItems) = CountBounds(schema, "minItems", "maxItems", path);
        if (schema["items"] is JsonArray) throw new GrammarException($"{path}/items as a list (tuple form) is not supported");
        if (schema["uniqueItems"]?.GetValueKind() == JsonValueKind.True && maxItems is not (0 or 1))
            return UniqueItems(schema, minItems, maxItems, path);
        var item = schema["items"] is { } items ? SubschemaRule(items, $"{path}/items") : AnyValue();
        return JsonGrammar.Array(item, minItems, maxItems);
    }

    /// Items of at most this many values can be unique (uniqueItems): each value at most once, in the enum's order.
    const int MaxUniqueValues = 16;

    /// uniqueItems over items with few values (an enum or const, a boolean, null): the values in their order, each
    /// at most once, so that every array written is unique. A rule per (value, items written so far).
    GrammarExpr UniqueItems(JsonObject schema, int minItems, int? maxItems, string path)
    {
        var values = FiniteValues(schema["items"], $"{path}/items");
        if (values is null || values.Count > MaxUniqueValues)
            throw new GrammarException($"uniqueItems at {path} is supported only over items of at most {MaxUniqueValues} values (an enum, a const or a boolean)");
        var most = Math.Min(maxItems ?? values.Count, values.Count);
        if (minItems > most) throw new GrammarException($"the schema at {path} allows no value: minItems is above its distinct items");
        var rules = new Dictionary<(int Value, int Written), int>();
        // an item is written only where enough later values are left to reach minItems (no dead end)
        bool CanFinish(int value, int written) => written + (values.Count - 1 - value) >= minItems;
        int Item(int value, int written)
        {
            if (rules.TryGetValue((value, written), out var rule)) return rule;
            rules[(value, written)] = rule = _rules.Declare($"{path} unique item {value}/{written}");
            var next = new List<GrammarExpr>();
            if (written >= minItems) next.Add(Empty);
            if (written < most)
                for (var later = value + 1; later < values.Count; later++)
                    if (CanFinish(later, written + 1)) next.Add(Sequence(JsonGrammar.Comma, new RuleExpr(Item(later, written + 1))));
            _rules.Define(rule, Sequence(Literal(Serialize(values[value])), new ChoiceExpr(next)));
            return rule;
        }
        var first = Enumerable.Range(0, values.Count).Where(v => CanFinish(v, 1)).Select(v => (GrammarExpr)new RuleExpr(Item(v, 1))).ToList();
        if (minItems == 0) first.Add(Empty);
        return Sequence(Literal("["), JsonGrammar.Whitespace, new ChoiceExpr(first), JsonGrammar.Whitespace, Literal("]"));
    }

    // the values a schema allows when they are few and listed (its enum or const, true and false, null); else null
    static List<JsonNode?>? FiniteValues(JsonNode? items, string path)
    {
        if (items is not JsonObject schema) return null;
        var constraining = schema.Where(p => Constrains(p.Key, p.Value)).Select(p => p.Key).ToHashSet();
        if (constraining.Contains("enum") || constraining.Contains("const"))
        {
            if (!constraining.IsSubsetOf(["enum", "const", "type"])) return null;
            var restricted = ValuesItAllows(schema, path);
            var listed = restricted.ContainsKey("const") ? [restricted["const"]] : ((JsonArray)restricted["enum"]!).ToList();
            return listed.Where((v, i) => !listed.Take(i).Any(w => JsonNode.DeepEquals(v, w))).Select(v => v?.DeepClone()).ToList();
        }
        return constraining.SetEquals(["type"]) ? schema["type"]?.ToString() switch
        {
            "boolean" => [JsonValue.Create(false), JsonValue.Create(true)],
            "null" => [null],
            _ => null,
        } : null;
    }

    GrammarExpr StringType(JsonObject schema, string path)
    {
        var (minLength, maxLength) = CountBounds(schema, "minLength", "maxLength", path);
        var pattern = OptionalString(schema, "pattern", path);
        var format = OptionalString(schema, "format", path);
        if (format is not null && !Formats.ContainsKey(format) && !StandardFormats.Contains(format))
            format = null;   // a format JSON Schema does not define ("path", "byte", ...): an annotation
        if (pattern is not null && format is not null)
            throw new GrammarException($"{path}: pattern together with format is not supported");
        if (format is not null && !Formats.ContainsKey(format))
            throw new GrammarException($"{path}/format '{format}' is not supported (supported: {string.Join(", ", Formats.Keys)})");
        if ((pattern ?? (format is null ? null : Formats[format])) is { } regex)
        {
            var text = RegexParser.Parse(regex, inJsonString: true);
            if (schema.ContainsKey("minLength") || schema.ContainsKey("maxLength"))
                text = RegularLanguage.Counted(text, minLength, maxLength, _rules, $"{path} length")   // the matches of that length
                    ?? throw new GrammarException($"the schema at {path} allows no value: no match of its pattern has its length");
            return Sequence(Literal("\""), text, Literal("\""));
        }
        if ((maxLength ?? minLength) <= LongStringLength) return JsonGrammar.String(minLength, maxLength);
        // past a few dozen characters each one is a call of one rule: its copies cost two automaton states, not forty
        if (_stringCharacter is null)
        {
            _stringCharacter = _rules.Declare("string-character");
            _rules.Define(_stringCharacter.Value, JsonGrammar.StringCharacter);
        }
        return Sequence(Literal("\""), Repeat(new RuleExpr(_stringCharacter.Value), minLength, maxLength), Literal("\""));
    }

    const int LongStringLength = 32;
    int? _stringCharacter;

    GrammarExpr IntegerType(JsonObject schema, string path)
    {
        long? min = Bound(schema, "minimum", path) is { } m ? (long)Math.Ceiling(m) : null;
        long? max = Bound(schema, "maximum", path) is { } x ? (long)Math.Floor(x) : null;
        if (Bound(schema, "exclusiveMinimum", path) is { } em) min = Math.Max(min ?? long.MinValue, (long)Math.Floor(em) + 1);
        if (Bound(schema, "exclusiveMaximum", path) is { } ex) max = Math.Min(max ?? long.MaxValue, (long)Math.Ceiling(ex) - 1);
        if (min > max) throw new GrammarException($"{path}: no integer lies between its minimum and maximum");
        return NumberGrammar.Integer(min, max);
    }

    GrammarExpr NumberType(JsonObject schema, string path)
    {
        foreach (var keyword in new[] { "exclusiveMinimum", "exclusiveMaximum" })
            if (schema.ContainsKey(keyword))
                throw new GrammarException($"{path}/{keyword} on a number is not supported (it is on an integer)");
        var min = Bound(schema, "minimum", path);
        var max = Bound(schema, "maximum", path);
        foreach (var (keyword, bound) in new[] { ("minimum", min), ("maximum", max) })
            if (bound is { } b && b != Math.Floor(b))
                throw new GrammarException($"{path}/{keyword} on a number must be a whole number");
        if (min > max) throw new GrammarException($"{path}: minimum is above maximum");
        return min is null && max is null ? NumberGrammar.AnyNumber() : NumberGrammar.Number((long?)min, (long?)max);
    }

    static double? Bound(JsonObject schema, string keyword, string path)
    {
        if (schema[keyword] is not { } node) return null;
        if (node.GetValueKind() != JsonValueKind.Number || !double.IsFinite(node.GetValue<double>()))
            throw new GrammarException($"{path}/{keyword} must be a number");
        var value = node.GetValue<double>();
        if (Math.Abs(value) > NumberGrammar.MaxBound)
            throw new GrammarException($"{path}/{keyword} beyond ±{NumberGrammar.MaxBound} is not supported");
        return value;
    }

    /// A lower and upper count (items, characters) as the automaton holds them: a lower one past
    /// RegexParser.MaxRepeat refused, an upper one kept to it (fewer items or characters are as valid).
    static (int Min, int? Max) CountBounds(JsonObject schema, string minKeyword, string maxKeyword, string path)
    {
        var min = Count(schema, minKeyword, path) ?? 0;
        var max = Count(schema, maxKeyword, path);
        if (max < min) throw new GrammarException($"{path}: {maxKeyword} is below {minKeyword}");
        if (min > RegexParser.MaxRepeat) throw new GrammarException($"{path}: {minKeyword} above {RegexParser.MaxRepeat} is not supported");
        return (min, max > RegexParser.MaxRepeat ? RegexParser.MaxRepeat : max);
    }

    static int? Count(JsonObject schema, string keyword, string path)
    {
        if (schema[keyword] is not { } node) return null;
        if (node.GetValueKind() != JsonValueKind.Number || !node.AsValue().TryGetValue<int>(out var count) || count < 0)
            throw new GrammarException($"{path}/{keyword} must be a non-negative integer");
        return count;
    }

    static string? OptionalString(JsonObject schema, string keyword, string path)
    {
        if (schema[keyword] is not { } node) return null;
        return node.GetValueKind() == JsonValueKind.String ? node.GetValue<string>()
            : throw new GrammarException($"{path}/{keyword} must be a string");
    }

    static List<string> StringList(JsonNode? node, string path) => node switch
    {
        null => [],
        JsonArray array when array.All(n => n?.GetValueKind() == JsonValueKind.String) => array.Select(n => n!.GetValue<string>()).ToList(),
        _ => throw new GrammarException($"{path} must be a list of strings"),
    };
}
