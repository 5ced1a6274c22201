using System.Text;
using Serving.Engine.Grammar;

namespace Serving.Engine.Tests.Grammar;

/// The compiled automata recognize exactly the texts of their constraint, byte by byte.
public sealed class GrammarAutomatonTests
{
    internal static bool Matches(StructuredOutputsParams spec, string text)
    {
        var automaton = GrammarCompiler.Compile(spec);
        lock (automaton.Gate)
        {
            var configuration = automaton.Start;
            foreach (var b in Encoding.UTF8.GetBytes(text))
            {
                configuration = automaton.Step(configuration, b);
                if (configuration == GrammarAutomaton.Dead) return false;
            }
            return automaton.IsAccepting(configuration);
        }
    }

    static bool MatchesSchema(string schema, string text) => Matches(new StructuredOutputsParams { Json = schema }, text);

    const string Person = """
        {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 5},
            "age": {"type": "integer", "minimum": 0, "maximum": 130},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
            "email": {"type": "string", "format": "email"}},
         "required": ["name", "age"], "additionalProperties": false}
        """;

    [Theory]
    [InlineData("""{"name": "Ann", "age": 30}""", true)]
    [InlineData("""{"name":"Ann","age":30,"tags":["a","b"]}""", true)]
    [InlineData("{\n  \"name\": \"Ann\",\n  \"age\": 130\n}", true)]
    [InlineData("""{"name": "Ann", "age": 30, "email": "x@y.org"}""", true)]
    [InlineData("""{"name": "Ann", "age": 131}""", false)]
    [InlineData("""{"name": "Annabel", "age": 3}""", false)]
    [InlineData("""{"age": 3, "name": "Ann"}""", false)] // properties come in the schema's order
    [InlineData("""{"name": "Ann"}""", false)]
    [InlineData("""{"name": "Ann", "age": 3, "tags": ["a", "b", "a"]}""", false)]
    [InlineData("""{"name": "Ann", "age": 3, "extra": 1}""", false)]
    [InlineData("""{"name": "A\"n", "age": 03}""", false)]
    [InlineData("""{"name": "A\"n", "age": 0}""", true)]
    [InlineData("""{"name": "Ann", "age": 30} """, false)]
    public void ObjectSchemaAcceptsExactlyItsInstances(string text, bool expected) =>
        Assert.Equal(expected, MatchesSchema(Person, text));

    [Fact]
    public void IntegerRangesAreExact()
    {
        foreach (var (min, max) in new[] { (-37, 123), (5, 5), (-100, -7), (0, 1000), (7, 99) })
        {
            var schema = $$"""{"type": "integer", "minimum": {{min}}, "maximum": {{max}}}""";
            for (var n = -1100; n <= 1100; n++)
                Assert.True((n >= min && n <= max) == MatchesSchema(schema, n.ToString()), $"{n} in [{min}, {max}]");
        }
        Assert.False(MatchesSchema("""{"type": "integer", "minimum": 0}""", "-0"));
        Assert.True(MatchesSchema("""{"type": "integer", "exclusiveMinimum": 9}""", "12345678901"));
        Assert.False(MatchesSchema("""{"type": "integer", "exclusiveMinimum": 9}""", "9"));
        Assert.True(MatchesSchema("""{"type": "integer", "maximum": -3}""", "-40000"));
    }

    [Fact]
    public void NumberRangesWithWholeBoundsAreExact()
    {
        const string schema = """{"type": "number", "minimum": -2, "maximum": 10}""";
        foreach (var (text, ok) in new[] { ("-2", true), ("-2.0", true), ("-2.5", false), ("-1.99", true), ("0.5", true),
                     ("10", true), ("10.000", true), ("10.01", false), ("9.999", true), ("11", false), ("-0", true) })
            Assert.True(ok == MatchesSchema(schema, text), text);
        Assert.True(MatchesSchema("""{"type": "number"}""", "-12.5e+3"));
        Assert.False(MatchesSchema("""{"type": "number"}""", "01"));
    }

    [Fact]
    public void AnyOfRefsAndRecursion()
    {
        const string tree = """
            {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"]}},
             "$ref": "#/$defs/node"}
            """;
        Assert.True(MatchesSchema(tree, """{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": [{"v": 4, "kids": []}]}]}"""));
        Assert.False(MatchesSchema(tree, """{"v": 1, "kids": [{"w": 2}]}"""));
        const string either = """{"anyOf": [{"type": "string", "maxLength": 2}, {"type": "null"}, {"const": {"k": [1, true]}}]}""";
        Assert.True(MatchesSchema(either, "\"ab\""));
        Assert.True(MatchesSchema(either, "null"));
        Assert.True(MatchesSchema(either, """{"k":[1,true]}"""));
        Assert.False(MatchesSchema(either, "\"abc\""));
        Assert.True(MatchesSchema("""{"type": ["string", "integer"]}""", "42"));
    }

    [Fact]
    public void JsonObjectAcceptsAnyNestedObject()
    {
        var spec = new StructuredOutputsParams { JsonObject = true };
        Assert.True(Matches(spec, """{"a": [1, 2.5, {"b": null}], "c": "\u00e9\n", "d": {"e": {"f": [[]]}}}"""));
        Assert.True(Matches(spec, "{}"));
        Assert.False(Matches(spec, "[1]"));
        Assert.False(Matches(spec, """{"a": 1,}"""));
    }

    /// Dates a validator's date type can hold: month lengths, leap days, and no year 0.
    [Theory]
    [InlineData("2024-02-29", true)]
    [InlineData("2000-02-29", true)]
    [InlineData("1900-02-29", false)]
    [InlineData("2023-02-29", false)]
    [InlineData("2023-04-31", false)]
    [InlineData("0001-01-01", true)]
    [InlineData("0000-01-17", false)]
    [InlineData("0000-02-29", false)]
    [InlineData("9999-12-31", true)]
    public void DateFormatHoldsOnlyCalendarDates(string date, bool expected) =>
        Assert.Equal(expected, MatchesSchema("""{"type": "string", "format": "date"}""", $"\"{date}\""));

    [Theory]
    [InlineData("uri", "https://example.com/a/b?q=1&r=%20#top", true)]
    [InlineData("uri", "urn:isbn:0451450523", true)]
    [InlineData("uri", "/relative/path", false)]
    [InlineData("uri", "https://exa mple.com", false)]
    [InlineData("uri-reference", "/relative/path?x=%5B1%5D", true)]
    [InlineData("uri-reference", "a%zz", false)]
    [InlineData("uri-reference", "", true)]
    [InlineData("uri-reference", "://", false)]
    [InlineData("uri-reference", "docs/a:b", true)]
    [InlineData("hostname", "api.example-1.com", true)]
    [InlineData("hostname", "-bad.example.com", false)]
    [InlineData("hostname", "under_score.com", false)]
    public void UriAndHostnameFormatsHoldTheirCharacters(string format, string value, bool expected) =>
        Assert.Equal(expected, MatchesSchema($$"""{"type": "string", "format": "{{format}}"}""", $"\"{value}\""));

    /// Keywords JSON Schema does not define as constraints are annotations and ignored (the specification's rule,
    /// and vLLM's backends'): a draft-04 "id", extensions, OpenAPI's "nullable", an "example"; so are the values of an
    /// unsupported keyword that constrain nothing.
    [Fact]
    public void AnnotationsAndNoOpKeywordsAreIgnored()
    {
        const string schema = """
            {"id": "http://example.com/s", "type": "object", "x-order": 1, "nullable": true, "example": {"a": 1},
             "minProperties": 0, "properties": {"a": {"type": "array", "items": {"type": "integer"}, "uniqueItems": false,
             "_format": "uri", "readonly": true}}, "required": ["a"], "additionalProperties": false}
            """;
        Assert.True(MatchesSchema(schema, """{"a": [1, 1]}"""));
        Assert.False(MatchesSchema(schema, """{"a": ["x"]}"""));
        Assert.True(MatchesSchema("""{"$ref": "#/$defs/n", "description": "d", "x-kind": "k", "$defs": {"n": {"type": "null"}}}""", "null"));
        // a format JSON Schema does not define is an annotation too; one it defines and the compiler lacks is refused
        Assert.True(MatchesSchema("""{"type": "string", "format": "file-path", "maxLength": 3}""", "\"a/b\""));
        Assert.False(MatchesSchema("""{"type": "string", "format": "file-path", "maxLength": 3}""", "\"a/bc\""));
    }

    [Theory]
    [InlineData("[a-c]{2}\\d+", "bc12", true)]
    [InlineData("[a-c]{2}\\d+", "bd12", false)]
    [InlineData("(cat|dog)s?", "dogs", true)]
    [InlineData("^\\w+@\\w+\\.com$", "me@x.com", true)]
    [InlineData("[^x]é.", "yéz", true)]
    [InlineData("[^x]é.", "xéz", false)]
    public void RegexMatchesTheWholeText(string pattern, string text, bool expected) =>
        Assert.Equal(expected, Matches(new StructuredOutputsParams { Regex = pattern }, text));

    [Fact]
    public void PatternInsideAJsonStringEscapesWhatJsonEscapes()
    {
        const string schema = """{"type": "string", "pattern": "a[\"\\\\]b"}""";
        Assert.True(MatchesSchema(schema, "\"a\\\"b\""));
        Assert.True(MatchesSchema(schema, "\"a\\\\b\""));
        Assert.False(MatchesSchema(schema, "\"a\"b\""));
    }

    [Fact]
    public void ChoiceIsOneOfTheStrings()
    {
        var spec = new StructuredOutputsParams { Choice = ["yes", "no", "maybe so"] };
        Assert.True(Matches(spec, "maybe so"));
        Assert.False(Matches(spec, "maybe"));
    }

    [Theory]
    [InlineData("""{"type": "object", "propertyNames": {"pattern": "^a"}}""", "propertyNames")]
    [InlineData("""{"properties": {"a": {"type": "string", "minLength": 2, "pattern": "x"}}}""", "#/properties/a")]
    [InlineData("""{"type": "integer", "minimum": "3"}""", "minimum")]
    [InlineData("""{"type": "strng"}""", "type")]
    [InlineData("""{"$ref": "#/$defs/missing"}""", "missing")]
    [InlineData("""{"$ref": "https://example.com/s.json"}""", "$ref")]
    [InlineData("""{"type": "string", "format": "ipv6"}""", "format")]
    [InlineData("""{"type": "array", "uniqueItems": true}""", "uniqueItems")]
    [InlineData("""{"type": "object", "properties": {"a": {"not": {"const": null}}}}""", "#/properties/a")]
    [InlineData("""{"$ref": "#/$defs/a", "uniqueItems": true, "$defs": {"a": {"type": "array"}}}""", "uniqueItems")]
    [InlineData("""{"type": "array", "minItems": 3, "maxItems": 2}""", "maxItems")]
    [InlineData("""{"enum": []}""", "enum")]
    [InlineData("""{"type": "number", "minimum": 0.5}""", "minimum")]
    [InlineData("""{"$ref": "#"}""", "no text")]
    [InlineData("{not json", "not valid JSON")]
    public void UnsupportedOrMalformedSchemasAreRefusedNamingTheKeyword(string schema, string named)
    {
        var error = Assert.Throws<InvalidRequestException>(() => GrammarCompiler.Compile(new StructuredOutputsParams { Json = schema }));
        Assert.Equal("structured_outputs", error.Param);
        Assert.Contains(named, error.Message);
    }

    [Theory]
    [InlineData("a(?=b)")]
    [InlineData("(a")]
    [InlineData("a{2000}")]
    [InlineData("\\bword")]
    public void UnsupportedRegexesAreRefused(string pattern) =>
        Assert.Throws<InvalidRequestException>(() => GrammarCompiler.Compile(new StructuredOutputsParams { Regex = pattern }));

    [Fact]
    public void HostileSizesAreRefusedNotCrashedOn()
    {
        Assert.Throws<InvalidRequestException>(() => GrammarCompiler.Compile(new StructuredOutputsParams { Regex = new string('(', 5000) + "a" + new string(')', 5000) }));
        Assert.Throws<InvalidRequestException>(() => GrammarCompiler.Compile(new StructuredOutputsParams { Regex = "(((a{1000}){1000}){1000})" }));
        Assert.Throws<InvalidRequestException>(() => GrammarCompiler.Compile(new StructuredOutputsParams { Json = new string('[', 5000) }));
    }

    [Fact]
    public void EqualConstraintsShareOneCompiledGrammar()
    {
        var a = GrammarCompiler.Compile(new StructuredOutputsParams { Json = Person });
        var b = GrammarCompiler.Compile(new StructuredOutputsParams { Json = Person });
        Assert.Same(a, b);
    }
}
