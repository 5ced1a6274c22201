using Serving.Engine.Grammar;

namespace Serving.Engine.Tests.Grammar;

/// Objects under patternProperties and additionalProperties, and schemas that must all hold at once (allOf, a
/// combinator's or a $ref's siblings): every text the grammar allows is valid under the schema; what the compiler
/// cannot make exact is refused.
public sealed class JsonSchemaObjectTests
{
    static bool Matches(string schema, string text) => GrammarAutomatonTests.Matches(new StructuredOutputsParams { Json = schema }, text);

    // whether some text the grammar allows starts with prefix (the automaton is still alive after it)
    static bool AllowsPrefix(string schema, string prefix)
    {
        var automaton = GrammarCompiler.Compile(new StructuredOutputsParams { Json = schema });
        lock (automaton.Gate)
        {
            var configuration = automaton.Start;
            foreach (var b in System.Text.Encoding.UTF8.GetBytes(prefix))
                if ((configuration = automaton.Step(configuration, b)) == GrammarAutomaton.Dead) return false;
            return true;
        }
    }

    static InvalidRequestException Refused(string schema) =>
        Assert.Throws<InvalidRequestException>(() => GrammarCompiler.Compile(new StructuredOutputsParams { Json = schema }));

    /// An undeclared member never takes a declared property's name, in any spelling: its value would have to meet
    /// that property's schema (a model skipping an optional property and writing it later as an extra one).
    [Theory]
    [InlineData("""{"a": "x", "b": 1}""", true)]
    [InlineData("""{"b": 1}""", true)]
    [InlineData("""{"ab": 1, "": 2}""", true)]
    [InlineData("""{"a": 1}""", false)]
    [InlineData("""{"b": 1, "a": "x"}""", false)]
    [InlineData("""{"\u0061": 1}""", false)]
    public void UndeclaredKeysAreNoDeclaredName(string text, bool expected) =>
        Assert.Equal(expected, Matches("""{"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true}""", text));

    /// A required name no property declares is an undeclared member, held by additionalProperties.
    [Fact]
    public void ARequiredUndeclaredNameMeetsAdditionalProperties()
    {
        const string schema = """{"type": "object", "required": ["b"], "additionalProperties": {"type": "integer"}}""";
        Assert.True(Matches(schema, """{"b": 1}"""));
        Assert.False(Matches(schema, """{"b": "x"}"""));
        Assert.Contains("allows no value", Refused("""{"properties": {"a": {}}, "required": ["b"], "additionalProperties": false}""").Message);
    }

    [Theory]
    [InlineData("""{"name": "n", "x-id": 1, "x-ab": 2}""", true)]
    [InlineData("""{"name": "n"}""", true)]
    [InlineData("""{"name": "n", "x-id": "1"}""", false)]
    [InlineData("""{"name": "n", "x-": 1}""", false)]
    [InlineData("""{"name": "n", "other": 1}""", false)]
    [InlineData("""{"x-id": 1}""", false)]
    public void PatternPropertiesGiveTheirKeysTheirValues(string text, bool expected) =>
        Assert.Equal(expected, Matches("""
            {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
             "patternProperties": {"^x-[a-z]+$": {"type": "integer"}}, "additionalProperties": false}
            """, text));

    /// JSON Schema's patterns are not anchored: a key containing a match takes the pattern's schema, a declared one
    /// besides its own; a declared name is written once, as declared.
    [Fact]
    public void APatternAppliesToEveryKeyContainingAMatch()
    {
        const string schema = """{"properties": {"max": {"type": "integer"}}, "patternProperties": {"a": {"minimum": 3}}}""";
        Assert.True(Matches(schema, """{"max": 3}"""));
        Assert.False(Matches(schema, """{"max": 2}"""));
        Assert.True(Matches(schema, """{"a": 3.5, "bar": 4}"""));
        Assert.False(Matches(schema, """{"bar": 2.5}"""));
        Assert.False(Matches(schema, """{"max": 3, "max": 4}"""));
        const string anchored = """{"properties": {"ab": {"minimum": 5}}, "patternProperties": {"^a.$": {"type": "integer"}}}""";
        Assert.True(Matches(anchored, """{"ab": 5, "ac": 4}"""));
        Assert.False(Matches(anchored, """{"ab": 4}"""));
        Assert.False(Matches(anchored, """{"ab": 5.5}"""));
        Assert.False(Matches(anchored, """{"abc": 1}"""));
    }

    /// additionalProperties' keys are written only where no pattern's schema says more (a grammar cannot tell the keys
    /// that match no pattern); patterns whose schemas say nothing leave them.
    [Fact]
    public void AdditionalKeysBesidePatternsOnlyWhereThePatternsAllowTheirValues()
    {
        const string open = """{"type": "object", "patternProperties": {"^x-": {}}, "additionalProperties": {"type": "integer"}}""";
        Assert.True(Matches(open, """{"y": 1, "x-a": "s"}"""));
        Assert.False(Matches(open, """{"y": "s"}"""));
        const string typed = """{"type": "object", "patternProperties": {"^x-": {"type": "string"}}}""";
        Assert.True(Matches(typed, """{"x-a": "s"}"""));
        Assert.False(Matches(typed, """{"y": 1}"""));
    }

    [Theory]
    [InlineData("""{"patternProperties": {"^a": {"type": "integer"}, "b$": {"type": "string"}}}""", "may match both")]
    [InlineData("""{"allOf": [{"type": "string", "pattern": "a"}, {"pattern": "b"}]}""", "'pattern'")]
    [InlineData("""{"type": "object", "properties": {"b": {"enum": ["X"], "type": "object"}}, "required": ["b"]}""", "allows no value")]
    [InlineData("""{"type": "object", "propertyNames": {"maxLength": 3}}""", "propertyNames")]
    public void WhatCannotBeMadeExactIsRefused(string schema, string named) => Assert.Contains(named, Refused(schema).Message);

    [Fact]
    public void OverlappingPatternsWithOneSchemaAreAllowed() =>
        Assert.True(Matches("""{"patternProperties": {"^a": {"type": "integer"}, "b$": {"type": "integer"}}}""", """{"ab": 1, "b": 2}"""));

    [Fact]
    public void AllOfHoldsEverySchema()
    {
        const string objects = """
            {"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                       {"properties": {"b": {"type": "string"}, "a": {"minimum": 2}}, "required": ["b"]}]}
            """;
        Assert.True(Matches(objects, """{"a": 2, "b": "x"}"""));
        Assert.False(Matches(objects, """{"a": 1, "b": "x"}"""));
        Assert.False(Matches(objects, """{"a": 2}"""));
        const string bounds = """{"allOf": [{"type": "integer", "minimum": 1}, {"maximum": 5, "minimum": 3}]}""";
        Assert.Equal([false, true, true, false], new[] { "2", "3", "5", "6" }.Select(t => Matches(bounds, t)));
        const string enums = """{"allOf": [{"enum": ["a", "b", "c"]}, {"enum": ["b", "c", "d"]}, {"type": "string"}]}""";
        Assert.Equal([false, true, true, false], new[] { "\"a\"", "\"b\"", "\"c\"", "\"d\"" }.Select(t => Matches(enums, t)));
    }

    /// A property one schema declares is, for another with additionalProperties false, an additional one: forbidden.
    [Fact]
    public void AdditionalPropertiesOfOneSchemaApplyToTheOthersProperties()
    {
        const string schema = """{"allOf": [{"properties": {"a": {}}, "additionalProperties": false}, {"properties": {"b": {}}}]}""";
        Assert.True(Matches(schema, """{"a": 1}"""));
        Assert.False(Matches(schema, """{"a": 1, "b": 2}"""));
    }

    /// A combinator's alternatives meet the keywords beside it: property schemas joined, not replaced (a function's
    /// parameters with a oneOf of which ones are required, as tool schemas are written).
    [Theory]
    [InlineData("""{"shape": "circle", "radius": 2}""", true)]
    [InlineData("""{"shape": "rectangle", "length": 2, "width": 3}""", true)]
    [InlineData("""{"shape": "circle", "radius": null}""", false)]
    [InlineData("""{"shape": "circle", "radius": "2"}""", false)]
    [InlineData("""{"shape": "rectangle", "radius": 2}""", false)]
    [InlineData("""{"shape": "square", "radius": 2}""", false)]
    public void AlternativesMeetTheirSiblings(string text, bool expected) =>
        Assert.Equal(expected, Matches("""
            {"type": "object", "required": ["shape"],
             "properties": {"shape": {"type": "string", "enum": ["circle", "rectangle"]}, "radius": {"type": "number"},
                            "length": {"type": "number"}, "width": {"type": "number"}},
             "oneOf": [{"properties": {"shape": {"const": "circle"}}, "required": ["radius"]},
                       {"properties": {"shape": {"const": "rectangle"}}, "required": ["length", "width"]}]}
            """, text));

    /// oneOf holds exactly one alternative: alternatives that differ in what they require are written each without
    /// what the others require; ones told apart by type or value need nothing left out.
    [Theory]
    [InlineData("""{"a": "x"}""", true)]
    [InlineData("""{"b": "y", "c": 1}""", true)]
    [InlineData("""{"a": "x", "b": "y"}""", false)]
    [InlineData("{}", false)]
    public void OneOfWritesOneAlternativeOnly(string text, bool expected) =>
        Assert.Equal(expected, Matches("""
            {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "integer"}},
             "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
            """, text));

    [Fact]
    public void OneOfAlternativesToldApartByTypeOrValueStayWhole()
    {
        Assert.True(Matches("""{"oneOf": [{"type": "string"}, {"type": "integer"}]}""", "1"));
        const string tagged = """
            {"oneOf": [{"properties": {"kind": {"const": "a"}, "x": {}}, "required": ["kind"]},
                       {"properties": {"kind": {"const": "b"}, "x": {}}, "required": ["kind", "x"]}]}
            """;
        Assert.True(Matches(tagged, """{"kind": "a", "x": 1}"""));
        Assert.True(Matches(tagged, """{"kind": "b", "x": 1}"""));
    }

    [Fact]
    public void ARefWithSiblingsMeetsBoth()
    {
        const string schema = """
            {"$defs": {"p": {"type": "object", "properties": {"a": {"type": "integer"}}}}, "$ref": "#/$defs/p", "required": ["a"]}
            """;
        Assert.True(Matches(schema, """{"a": 1}"""));
        Assert.False(Matches(schema, "{}"));
        Assert.False(Matches(schema, """{"a": "1"}"""));
    }

    /// A dependency holds always where its property may be written (more than asked, never less), and is dropped
    /// where it cannot be; "not" of required names leaves one of them out, "not" of types keeps the others.
    [Fact]
    public void DependenciesAndNotAreWrittenAsKeywordsTheCompilerBuilds()
    {
        const string card = """
            {"type": "object", "properties": {"card": {"type": "string"}, "billing": {"type": "string"}, "a": {}},
             "dependencies": {"card": ["billing"], "shape": ["circle"]}}
            """;
        Assert.True(Matches(card, """{"card": "c", "billing": "b"}"""));
        Assert.False(Matches(card, """{"card": "c"}"""));
        Assert.True(Matches(card, """{"billing": "b", "a": 1}"""));
        const string notBoth = """{"type": "object", "properties": {"a": {}, "b": {}}, "not": {"required": ["a", "b"]}}""";
        Assert.True(Matches(notBoth, """{"a": 1}"""));
        Assert.False(Matches(notBoth, """{"a": 1, "b": 2}"""));
        const string neither = """
            {"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "not": {"anyOf": [{"required": ["a"]}, {"$ref": "#/$defs/b"}]},
             "$defs": {"b": {"required": ["b"]}}}
            """;
        Assert.Equal([true, false, false], new[] { """{"c": 1}""", """{"a": 1}""", """{"b": 1}""" }.Select(t => Matches(neither, t)));
        Assert.True(Matches("""{"not": {"type": "string"}}""", "1"));
        Assert.False(Matches("""{"not": {"type": "string"}}""", "\"s\""));
        Assert.Contains("not", Refused("""{"not": {"type": "integer"}}""").Message);
        Assert.Contains("not", Refused("""{"type": "string", "not": {"enum": ["x"]}}""").Message);
    }

    /// minProperties and maxProperties held by writing fewer objects: the first optional properties required, those
    /// past the room left out; undeclared members counted.
    [Fact]
    public void PropertyCountsAreHeld()
    {
        const string abc = """{"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "minProperties": 2}""";
        Assert.Equal([true, true, false, false], new[] { """{"a": 1, "b": 2}""", """{"a": 1, "b": 2, "c": 3}""", """{"a": 1}""", """{"c": 1}""" }.Select(t => Matches(abc, t)));
        const string atMostTwo = """{"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "maxProperties": 2}""";
        Assert.Equal([true, true, false], new[] { "{}", """{"a": 1, "b": 2}""", """{"a": 1, "b": 2, "c": 3}""" }.Select(t => Matches(atMostTwo, t)));
        const string map = """{"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 1, "maxProperties": 2}""";
        Assert.Equal([false, true, true, false], new[] { "{}", """{"x": 1}""", """{"x": 1, "y": 2}""", """{"x": 1, "y": 2, "z": 3}""" }.Select(t => Matches(map, t)));
        const string open = """{"properties": {"a": {}}, "required": ["a"], "additionalProperties": true, "maxProperties": 2}""";
        Assert.Equal([true, false], new[] { """{"a": 1, "b": 2}""", """{"a": 1, "b": 2, "c": 3}""" }.Select(t => Matches(open, t)));
        Assert.Contains("maxProperties", Refused("""{"properties": {"a": {}}, "required": ["a"], "maxProperties": 0}""").Message);
    }

    /// minLength / maxLength beside a pattern or format: the matches of that many characters, an escape or a UTF-8
    /// sequence one character.
    [Fact]
    public void LengthsBesideAPatternCountCharacters()
    {
        const string word = """{"type": "string", "pattern": "^[a-z]+$", "maxLength": 3}""";
        Assert.Equal([true, false, false], new[] { "\"abc\"", "\"abcd\"", "\"\"" }.Select(t => Matches(word, t)));
        const string any = """{"type": "string", "pattern": ".*", "minLength": 2, "maxLength": 3}""";
        Assert.Equal([true, false, true, true, false],
            new[] { "\"a\\t\"", "\"\\u00e9\"", "\"éé\"", "\"é\\\"x\"", "\"é\\\"xy\"" }.Select(t => Matches(any, t)));
        // no prefix the grammar allows is a dead end: "aXY" could never end in "b" within 3 characters
        const string ends = """{"type": "string", "pattern": "^a.*b$", "maxLength": 3}""";
        Assert.True(Matches(ends, "\"aXb\""));
        Assert.False(AllowsPrefix(ends, "\"aXY"));
        Assert.True(AllowsPrefix(ends, "\"aX"));
        const string email = """{"type": "string", "format": "email", "maxLength": 8}""";
        Assert.Equal([true, false], new[] { "\"a@b.co\"", "\"abc@b.com\"" }.Select(t => Matches(email, t)));
    }

    /// uniqueItems over items of few values: each value at most once, in the enum's order; over others refused.
    [Fact]
    public void UniqueItemsOfFewValuesComeOnceEachInOrder()
    {
        const string days = """{"type": "array", "items": {"type": "string", "enum": ["mon", "tue", "wed", 1]}, "uniqueItems": true, "minItems": 1, "maxItems": 2}""";
        Assert.Equal([true, true, false, false, false, false],
            new[] { """["mon"]""", """["mon", "wed"]""", """["wed", "mon"]""", """["mon", "mon"]""", "[]", """["mon", "tue", "wed"]""" }.Select(t => Matches(days, t)));
        Assert.True(Matches("""{"type": "array", "items": {"type": "boolean"}, "uniqueItems": true}""", "[false, true]"));
        Assert.False(Matches("""{"type": "array", "items": {"type": "boolean"}, "uniqueItems": true}""", "[true, true]"));
        Assert.Contains("uniqueItems", Refused("""{"type": "array", "items": {"type": "string"}, "uniqueItems": true}""").Message);
    }

    /// Bounds past what the automaton holds are kept to it where that only writes fewer texts (a maxLength or maxItems
    /// above 1000 writes at most 1000); a minLength or minItems above it is refused.
    [Fact]
    public void LongBoundsAreKeptToWhatTheAutomatonHolds()
    {
        const string text = """{"type": "string", "maxLength": 5000}""";
        Assert.True(Matches(text, $"\"{new string('a', 1000)}\""));
        Assert.False(Matches(text, $"\"{new string('a', 1001)}\""));
        const string bounded = """{"type": "string", "minLength": 40, "maxLength": 50}""";
        Assert.Equal([false, true, true, false], new[] { 39, 40, 50, 51 }.Select(n => Matches(bounded, $"\"{new string('é', n)}\"")));
        Assert.True(Matches("""{"type": "array", "maxItems": 4000}""", "[1, 2]"));
        Assert.Contains("minLength", Refused("""{"type": "string", "minLength": 1001}""").Message);
    }

    /// An enum is written value by value, so values its type refuses are left out; an optional property none of whose
    /// values is of its type is never written.
    [Fact]
    public void EnumValuesOutsideTheTypeAreLeftOut()
    {
        Assert.False(Matches("""{"type": "integer", "enum": [1, "2", 3.5]}""", "\"2\""));
        Assert.True(Matches("""{"type": "integer", "enum": [1, "2", 3.5]}""", "1"));
        Assert.False(Matches("""{"type": "integer", "enum": [1, "2", 3.5]}""", "3.5"));
        const string optional = """{"type": "object", "properties": {"b": {"enum": ["X"], "type": "object"}, "c": {"type": "string"}}}""";
        Assert.False(Matches(optional, """{"b": "X"}"""));
        Assert.True(Matches(optional, """{"c": "X"}"""));
    }
}
