namespace Serving.Engine.Grammar;

/// What the output of a request must be, as vLLM's StructuredOutputsParams spells it: exactly one of a JSON
/// Schema (Json, as JSON text), any JSON object (JsonObject), a regular expression (Regex), one of a
/// list of strings (Choice), or a grammar in GBNF (Grammar, EbnfParser). Immutable; checked at admission (Validate), compiled once per distinct value.
public sealed record StructuredOutputsParams
{
    public string? Json { get; init; }
    public bool JsonObject { get; init; }
    public string? Regex { get; init; }
    public IReadOnlyList<string>? Choice { get; init; }
    public string? Grammar { get; init; }
    /// The output first thinks, up to and including the first occurrence of this tag (a reasoning model's end of
    /// thinking: `</think>`, Seed-OSS's `</seed:think>`), then meets the constraint: a reasoning model whose answer
    /// starts in its thinking (vLLM applies the constraint once the thinking ends). Null: no thinking first.
    public string? ThinksUntil { get; init; }

    /// The output is free until it first writes these token ids, and meets the constraint from there: gpt-oss's
    /// final-channel header after its analysis (harmony's `<|channel|>final<|message|>`, special tokens that no
    /// grammar spells). Null: the constraint holds from the first token (or after the thinking, ThinksUntil). Not
    /// part of Key: the compiled grammar is the same; each sequence's GrammarState watches for the opening.
    public IReadOnlyList<int>? AfterTokens { get; init; }

    /// Throws InvalidRequestException (param "structured_outputs") when the constraint is malformed or uses
    /// something the grammar compiler does not support; the message names the keyword and its path.
    /// Compiles through the process-wide cache, so checking first costs nothing later.
    public void Validate() => GrammarCompiler.Compile(this);

    /// The cache key: the kind and its text (equal constraints share one compiled grammar).
    internal string Key
    {
        get
        {
            var set = (Json is not null ? 1 : 0) + (JsonObject ? 1 : 0) + (Regex is not null ? 1 : 0) + (Choice is not null ? 1 : 0)
                + (Grammar is not null ? 1 : 0);
            if (set != 1)
                throw new InvalidRequestException(
                    "structured outputs need exactly one of json, json_object, regex, choice or grammar", "structured_outputs");
            return (ThinksUntil is { } tag ? $"thinks_until:{tag}:" : "") + (Json is not null ? "json:" + Json
                : JsonObject ? "json_object"
                : Regex is not null ? "regex:" + Regex
                : Grammar is not null ? "grammar:" + Grammar
                : "choice:" + System.Text.Json.JsonSerializer.Serialize(Choice));
        }
    }
}
