using System.Text;
using System.Text.Json;
using Json.Schema;
using Serving.Engine.Grammar;

namespace Serving.Engine.Tests.Grammar;

/// Every text a JSON Schema's grammar allows is valid under the schema, as an independent validator (JsonSchema.Net)
/// reads it: random walks through each automaton, one allowed byte at a time, each ending where the grammar may end.
/// The walks also show that no allowed prefix is a dead end (some byte or the end is always allowed).
public sealed class JsonSchemaSoundnessTests
{
    public static TheoryData<string> Schemas => new()
    {
        """{"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}, "additionalProperties": {"type": "integer", "maximum": 9}}""",
        """{"type": "object", "properties": {"max": {"type": "integer"}}, "patternProperties": {"^x-[b-c]+$": {"type": "boolean"}, "a": {"minimum": 3}}, "additionalProperties": false}""",
        """{"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"properties": {"b": {"enum": ["p", "q"]}, "a": {"maximum": 4}}, "additionalProperties": false}]}""",
        """
        {"type": "object", "required": ["shape"],
         "properties": {"shape": {"type": "string", "enum": ["circle", "square"]}, "radius": {"type": "number"}, "side": {"type": "number"}},
         "oneOf": [{"properties": {"shape": {"const": "circle"}}, "required": ["radius"]}, {"properties": {"shape": {"const": "square"}}, "required": ["side"]}]}
        """,
        """{"type": "object", "properties": {"a": {"type": "null"}, "b": {"type": "null"}}, "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}""",
        """{"$defs": {"n": {"type": "object", "properties": {"v": {"type": "integer"}, "next": {"$ref": "#/$defs/n", "required": ["v"]}}}}, "$ref": "#/$defs/n", "required": ["v"]}""",
        """{"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "not": {"required": ["a", "b"]}, "minProperties": 1, "maxProperties": 2, "dependentRequired": {"c": ["a"]}}""",
        """{"type": "array", "items": {"type": "string", "pattern": "^[a-z\"\\\\é]+$", "minLength": 2, "maxLength": 4}, "maxItems": 3}""",
        """{"type": "object", "additionalProperties": {"enum": [1, "1", null]}, "maxProperties": 2}""",
        """{"type": "object", "properties": {"builtin": {"enum": ["MOD"], "type": "object"}, "f": {"type": "string", "format": "uri-reference", "maxLength": 12}}}""",
        """
        {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}], "type": ["object", "null"],
         "$defs": {"a": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1}}, "required": ["id"], "additionalProperties": false}}}
        """,
        """{"type": "array", "items": {"type": "string", "format": "email", "maxLength": 10}, "minItems": 1}""",
        """{"type": "array", "items": {"enum": ["a", 1, 1.0, null, true, {"k": [1]}]}, "uniqueItems": true, "minItems": 2}""",
        """
        {"type": "object", "required": ["d", "u", "h", "i", "t", "e", "r"],
         "properties": {"d": {"type": "string", "format": "date-time"}, "u": {"type": "string", "format": "uuid"},
                        "h": {"type": "string", "format": "hostname"}, "i": {"type": "string", "format": "ipv4"},
                        "t": {"type": "string", "format": "time"}, "e": {"type": "string", "format": "date"},
                        "r": {"type": "string", "format": "uri"}}}
        """,
    };

    [Theory]
    [MemberData(nameof(Schemas))]
    public void RandomTextsOfTheGrammarAreValid(string schemaText)
    {
        var automaton = GrammarCompiler.Compile(new StructuredOutputsParams { Json = schemaText });
        var schema = JsonSchema.FromText(schemaText);
        var random = new Random(schemaText.Length);
        var structural = "\"}],:0123456789 ntf"u8.ToArray();
        for (var sample = 0; sample < 200; sample++)
        {
            var text = new List<byte>();
            lock (automaton.Gate)
            {
                var configuration = automaton.Start;
                while (true)
                {
                    var next = Enumerable.Range(0, 256).Where(b => automaton.Step(configuration, (byte)b) != GrammarAutomaton.Dead).ToList();
                    if (automaton.IsAccepting(configuration) && (next.Count == 0 || random.NextDouble() < 0.2)) break;
                    Assert.True(next.Count > 0, $"a dead end after {Encoding.UTF8.GetString([.. text])}");
                    // lean to the bytes that close things, so that walks end
                    var closing = next.Where(b => structural.Contains((byte)b)).ToList();
                    var pick = closing.Count > 0 && random.NextDouble() < 0.6 ? closing[random.Next(closing.Count)] : next[random.Next(next.Count)];
                    text.Add((byte)pick);
                    configuration = automaton.Step(configuration, (byte)pick);
                }
            }
            var json = Encoding.UTF8.GetString([.. text]);
            var result = schema.Evaluate(JsonDocument.Parse(json).RootElement,
                new EvaluationOptions { RequireFormatValidation = true, OutputFormat = OutputFormat.List });
            var errors = (result.Details ?? []).Where(d => d.Errors is not null)
                .SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}"));
            Assert.True(result.IsValid, $"{json} is not valid under {schemaText}: {string.Join("; ", errors)}");
        }
    }
}
