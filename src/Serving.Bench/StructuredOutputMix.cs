using System.Diagnostics;
using Serving.Engine.Grammar;
using Serving.Engine.Tokenization;
using Spectre.Console;

namespace Serving.Bench;

/// The JSON-schema side of the engine benchmark (--structured-output-mix): the schemas the constrained
/// requests cycle through, and what a new schema costs before and during its first request.
internal static class StructuredOutputMix
{
    /// Nested objects, arrays, enums with anyOf, numbers: the shapes agents and extraction tasks send.
    public static readonly string[] Schemas =
    [
        """
        {"type": "object", "properties": {"user": {"type": "object", "properties": {"name": {"type": "string"},
          "email": {"type": "string", "format": "email"}, "address": {"type": "object", "properties": {
          "city": {"type": "string"}, "zip": {"type": "string", "pattern": "\\d{5}"}}, "required": ["city", "zip"],
          "additionalProperties": false}}, "required": ["name", "address"], "additionalProperties": false},
          "active": {"type": "boolean"}}, "required": ["user", "active"], "additionalProperties": false}
        """,
        """
        {"type": "object", "properties": {"lines": {"type": "array", "minItems": 1, "items": {"type": "object",
          "properties": {"sku": {"type": "string", "pattern": "[A-Z]{3}-\\d{3}"}, "qty": {"type": "integer", "minimum": 1,
          "maximum": 999}, "note": {"type": "string"}}, "required": ["sku", "qty"], "additionalProperties": false}},
          "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["lines", "tags"], "additionalProperties": false}
        """,
        """
        {"type": "object", "properties": {"status": {"enum": ["open", "closed", "on hold"]}, "priority": {"enum": [1, 2, 3, null]},
          "payload": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "object", "properties": {"ok": {"type": "boolean"}},
          "required": ["ok"], "additionalProperties": false}, {"type": "null"}]}}, "required": ["status", "priority", "payload"],
          "additionalProperties": false}
        """,
        """
        {"type": "object", "properties": {"price": {"type": "number", "minimum": 0, "maximum": 100000}, "delta": {"type": "number"},
          "count": {"type": "integer"}, "when": {"type": "string", "format": "date-time"}}, "required": ["price", "delta", "count", "when"],
          "additionalProperties": false}
        """,
    ];

    public static StructuredOutputsParams For(int requestIndex) => new() { Json = Schemas[requestIndex % Schemas.Length] };

    /// Compiles each schema fresh (a $comment makes it new to the cache), then walks one random output through
    /// it with every mask computed cold: the compile time a new schema adds to its first request, and the
    /// mask work spread over that request's steps.
    public static void ReportFirstUse(string tokenizerFolder, int vocabSize, IReadOnlyCollection<int> eosTokenIds)
    {
        var clock = Stopwatch.StartNew();
        var tokenizer = TextTokenizer.Load(tokenizerFolder);
        var vocabulary = TokenVocabulary.Create(tokenizer, vocabSize, eosTokenIds.Concat(tokenizer.EosTokenIds).ToArray());
        var vocabularyTime = clock.Elapsed;
        var table = new Table().AddColumns("schema", "compile ms", "automaton states", "first mask ms", "cold walk: tokens", "masks", "ms per mask");
        var random = new Random(1);
        var mask = new byte[vocabulary.NumMaskBytes];
        for (var i = 0; i < Schemas.Length; i++)
        {
            var fresh = new StructuredOutputsParams { Json = Schemas[i].TrimEnd().TrimEnd('}') + $", \"$comment\": \"{Guid.NewGuid()}\"}}" };
            clock.Restart();
            var automaton = GrammarCompiler.Compile(fresh);
            var compile = clock.Elapsed;
            var state = new GrammarState(automaton, vocabulary);
            clock.Restart();
            state.WriteMask(mask);
            var firstMask = clock.Elapsed;
            clock.Restart();
            var (tokens, masks) = ColdWalk(state, vocabulary, mask, random);
            var walk = clock.Elapsed;
            table.AddRow($"{i}", $"{compile.TotalMilliseconds:F1}", $"{automaton.NumConfigurations}", $"{firstMask.TotalMilliseconds:F1}",
                $"{tokens}", $"{masks}", $"{walk.TotalMilliseconds / Math.Max(1, masks):F2}");
        }
        AnsiConsole.MarkupLine($"[bold]Structured outputs[/]: vocabulary index {vocabulary.Size} tokens, {vocabulary.NumNodes} trie nodes, " +
            $"built once per engine in {vocabularyTime.TotalMilliseconds:F0} ms");
        AnsiConsole.Write(table);
    }

    /// Random allowed tokens until only EOS is left (or 300 tokens); returns tokens taken and masks written.
    static (int Tokens, int Masks) ColdWalk(GrammarState state, TokenVocabulary vocabulary, byte[] mask, Random random)
    {
        var tokens = new List<int>();
        var masks = 0;
        while (tokens.Count < 300)
        {
            state.WriteMask(mask);
            masks++;
            var allowed = Enumerable.Range(0, vocabulary.Size)
                .Where(id => (mask[id >> 3] & (1 << (id & 7))) != 0 && !vocabulary.IsEos(id)).ToList();
            if (allowed.Count == 0) break;
            tokens.Add(allowed[random.Next(allowed.Count)]);
            state.SyncTo(tokens);
        }
        return (tokens.Count, masks);
    }
}
