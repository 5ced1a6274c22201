using System.Text;
using System.Text.Json.Nodes;
using static Serving.Engine.Grammar.GrammarExpr;

namespace Serving.Engine.Grammar;

// The grammar of an object under properties, required, patternProperties and additionalProperties. Every object it
// allows is valid: where the schema's meaning needs what a grammar of keys cannot say (the intersection of two
// schemas, keys matching no pattern), the object is refused or those members are not generated.
internal sealed partial class JsonSchemaCompiler
{
    /// A patternProperties entry: its regular expression, the schema of the values whose keys match it, the keys it
    /// applies to (inside the quotes) and those of them it writes. JSON Schema's patterns are not anchored: a key
    /// applies when it contains a match, so "^x-" takes every key that starts with "x-". Where an alternation may
    /// anchor one branch only ("^a|b"), Applies is more keys than apply and Writes fewer, so that what is written is
    /// valid and every key that may apply is checked.
    sealed record KeyPattern(string Pattern, JsonNode? Schema, string Path, GrammarExpr Applies, GrammarExpr Writes);

    /// Declared properties in order (required ones must appear), then undeclared members: keys a patternProperties
    /// pattern matches, with its values, and, where additionalProperties allows them, keys that are no declared name,
    /// with its values. After the first member each later one is ", member" or absent, so optional properties cost no
    /// blow-up: First(i) picks the first member present.
    GrammarExpr ObjectType(JsonObject schema, string path)
    {
        var properties = schema["properties"] switch
        {
            null => new List<(string Name, JsonNode? Schema)>(),
            JsonObject obj => obj.Select(p => (Name: p.Key, Schema: p.Value)).ToList(),
            _ => throw new GrammarException($"{path}/properties must be an object"),
        };
        var required = StringList(schema["required"], $"{path}/required");
        var patterns = PatternProperties(schema, path);
        // a required name no property declares is an undeclared member: additionalProperties holds it unless a pattern
        // applies (DeclaredValue joins the patterns' schemas)
        foreach (var name in required.Where(n => properties.All(p => p.Name != n)))
            properties.Add((name, patterns.Any(p => RegularLanguage.Intersect(p.Applies, JsonGrammar.KeyText(name)))
                ? JsonValue.Create(true) : schema["additionalProperties"]?.DeepClone() ?? JsonValue.Create(true)));
        var members = new List<(GrammarExpr Member, bool Required)>();
        foreach (var (name, declaredSchema) in properties)
        {
            var valuePath = $"{path}/properties/{name}";
            var value = DeclaredValue(name, declaredSchema, valuePath, patterns);
            if (!required.Contains(name) && AllowsNoValue(value)) continue;   // a property no value meets: never written
            members.Add((Member(name, value, valuePath), required.Contains(name)));
        }
        var extraMember = UndeclaredMember(schema, properties.Select(p => p.Name).ToList(), patterns, path);
        var (minExtra, maxExtra) = CountMembers(schema, members, ref extraMember, path);
        var separator = JsonGrammar.Comma;

        GrammarExpr Rest(int from, int extrasBefore = 0)
        {
            var items = new List<GrammarExpr>();
            for (var i = from; i < members.Count; i++)
            {
                var item = Sequence(separator, members[i].Member);
                items.Add(members[i].Required ? item : Optional(item));
            }
            if (extraMember is not null)
                items.Add(Repeat(Sequence(separator, extraMember), Math.Max(0, minExtra - extrasBefore), maxExtra - extrasBefore));
            return new SequenceExpr(items);
        }

        GrammarExpr First(int at)
        {
            if (at == members.Count)
            {
                if (extraMember is null) return Empty;
                var extras = Sequence(extraMember, Rest(members.Count, extrasBefore: 1));
                return minExtra > 0 ? extras : Optional(extras);
            }
            var present = Sequence(members[at].Member, Rest(at + 1));
            return members[at].Required ? present : Choice(present, First(at + 1));
        }

        return Sequence(Literal("{"), JsonGrammar.Whitespace, First(0), JsonGrammar.Whitespace, Literal("}"));
    }

    /// minProperties / maxProperties, held by writing fewer objects: past maxProperties the optional properties
    /// after the first that fit and the undeclared members are left out; short of minProperties the first optional
    /// properties become required, then undeclared members are. Returns how many undeclared members to write.
    static (int Min, int? Max) CountMembers(JsonObject schema, List<(GrammarExpr Member, bool Required)> members, ref GrammarExpr? extra, string path)
    {
        var min = Count(schema, "minProperties", path) ?? 0;
        var max = Count(schema, "maxProperties", path);
        var required = members.Count(m => m.Required);
        if (max < required || max < min) throw new GrammarException($"{path}: maxProperties is below minProperties or the required properties' count");
        if (max is { } most && (extra is not null || members.Count > most))
        {
            var room = most - required;
            for (var i = 0; i < members.Count; i++)
                if (!members[i].Required && room-- <= 0) members.RemoveAt(i--);
            if (members.Count >= most) extra = null;
            max = most - members.Count;   // undeclared members fill what the declared ones leave
        }
        else max = null;
        for (var i = 0; i < members.Count && members.Count(m => m.Required) < min; i++)
            members[i] = (members[i].Member, true);
        var missing = min - members.Count(m => m.Required);
        if (missing > 0 && extra is null) throw new GrammarException($"{path}: minProperties asks more members than the object may hold");
        return (Math.Max(0, missing), max);
    }

    GrammarExpr Member(string name, JsonNode? schema, string path) =>
        Sequence(Literal(Serialize(JsonValue.Create(name))), JsonGrammar.Colon, SubschemaRule(schema, path));

    /// The patterns of patternProperties, refused where a key one of them generates falls under another whose schema
    /// says more (its value would have to meet both).
    List<KeyPattern> PatternProperties(JsonObject schema, string path)
    {
        var patterns = schema["patternProperties"] switch
        {
            null => [],
            JsonObject obj => obj.Select(p => KeyPatternOf(p.Key, p.Value, $"{path}/patternProperties/{p.Key}")).ToList(),
            _ => throw new GrammarException($"{path}/patternProperties must be an object"),
        };
        foreach (var generating in patterns)
            foreach (var other in patterns)
                if (other != generating && !Implies(generating.Schema, other.Schema) && RegularLanguage.Intersect(generating.Writes, other.Applies))
                    throw new GrammarException(
                        $"{path}/patternProperties: a key may match both '{generating.Pattern}' and '{other.Pattern}', whose schemas differ (not supported)");
        return patterns;
    }

    static KeyPattern KeyPatternOf(string pattern, JsonNode? schema, string path)
    {
        var match = RegexParser.Parse(pattern, inJsonString: true);
        var anything = Repeat(RegexParser.CharacterOf(CodePointSet.All, inJsonString: true), 0, null);
        var applies = Sequence(pattern.StartsWith('^') ? Empty : anything, match, EndsWithAnchor(pattern) ? Empty : anything);
        // written keys hold no control character (JsonGrammar.KeyCharacter) around the match: fewer keys, a smaller grammar
        var around = Repeat(JsonGrammar.KeyCharacter, 0, null);
        var writes = Sequence(pattern.StartsWith('^') ? Empty : around, match, EndsWithAnchor(pattern) ? Empty : around);
        return pattern.Contains('|')
            ? new KeyPattern(pattern, schema, path, Sequence(anything, match, anything), match)
            : new KeyPattern(pattern, schema, path, applies, writes);
    }

    // a final '$' that is not escaped (an even number of backslashes before it)
    static bool EndsWithAnchor(string pattern)
    {
        if (!pattern.EndsWith('$')) return false;
        var at = pattern.Length - 2;
        var count = 0;
        while (at >= 0 && pattern[at] == '\\') { count++; at--; }
        return count % 2 == 0;
    }

    /// A declared property's value schema: its own, intersected with that of each pattern that applies to its name.
    JsonNode? DeclaredValue(string name, JsonNode? schema, string schemaPath, List<KeyPattern> patterns)
    {
        var key = JsonGrammar.KeyText(name);
        return patterns.Where(p => RegularLanguage.Intersect(p.Applies, key)).Aggregate(schema, (value, p) => Intersect(value, p.Schema, schemaPath));
    }

    /// Members with keys no property declares, or null when there are none: those of each pattern, and, where
    /// additionalProperties allows them (true, a schema, or absent on an object without properties), any other key
    /// with its values; but those only where no pattern's schema says more than additionalProperties (a key matching
    /// that pattern would have to meet both, and a grammar cannot tell the keys matching no pattern).
    GrammarExpr? UndeclaredMember(JsonObject schema, List<string> declared, List<KeyPattern> patterns, string path)
    {
        var alternatives = patterns.Select(p => (Pattern: p, Keys: UndeclaredKeys(p, declared))).Where(p => p.Keys is not null)
            .Select(p => Sequence(Literal("\""), p.Keys!, Literal("\""), JsonGrammar.Colon, SubschemaRule(p.Pattern.Schema, p.Pattern.Path)))
            .ToList();
        var additional = schema["additionalProperties"] ?? (declared.Count == 0 ? JsonValue.Create(true) : null);
        var allowed = additional is not null && !IsFalse(additional);
        if (allowed && patterns.All(p => Implies(additional, p.Schema)))
            alternatives.Add(Sequence(Literal("\""), JsonGrammar.KeyTextOtherThan(declared), Literal("\""), JsonGrammar.Colon,
                SubschemaRule(additional, $"{path}/additionalProperties")));
        if (alternatives.Count == 0) return null;
        var rule = _rules.Declare($"{path} undeclared member");   // one copy, however many places of the object take it
        _rules.Define(rule, Choice([.. alternatives]));
        return new RuleExpr(rule);
    }

    // the keys a pattern writes but the declared names (a declared property is written once, as declared); null when
    // it writes no other
    GrammarExpr? UndeclaredKeys(KeyPattern pattern, List<string> declared)
    {
        var taken = declared.Where(name => RegularLanguage.Intersect(pattern.Writes, JsonGrammar.KeyText(name))).ToList();
        return taken.Count == 0 ? pattern.Writes
            : RegularLanguage.Except(pattern.Writes, taken.Select(n => Encoding.UTF8.GetBytes(RegexParser.JsonSpelling(n))), _rules, pattern.Path);
    }

    // whether every value valid under `schema` is valid under `other` as far as the compiler can tell: `other`
    // constrains nothing, or the two are the same schema
    static bool Implies(JsonNode? schema, JsonNode? other) => IsTrivial(other) || JsonNode.DeepEquals(schema, other);

    // true, or an object with no constraining keyword ({}, annotations only)
    static bool IsTrivial(JsonNode? schema) => schema switch
    {
        JsonValue value => value.TryGetValue<bool>(out var allowed) && allowed,
        JsonObject obj => !obj.Any(p => Constrains(p.Key, p.Value)),
        _ => false,
    };
}
