using System.Text.Json;
using Json.Schema;
using Serving.Engine.Grammar;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Grammar;

/// Token masks over real vocabularies (byte-level BPE, SentencePiece with byte fallback, Metaspace BPE, the
/// tokenizer.model reader): each mask equals the brute-force answer "does this token keep the grammar
/// alive", and random walks through the masks decode to JSON that a real JSON Schema validator accepts.
public sealed class TokenMaskTests
{
    static readonly string DataDir = Path.Combine(AppContext.BaseDirectory, "Tokenization", "Data");

    public static TheoryData<string> Tokenizers() =>
        ["llama2", "llama3", "qwen2", "metaspace", "fixture:llama-gqa", "fixture:llama-sp-mqa"];

    internal static TextTokenizer Load(string name) => name.StartsWith("fixture:", StringComparison.Ordinal)
        ? TextTokenizer.Load(Fixtures.Dir(name["fixture:".Length..]))
        : TextTokenizer.Load(Path.Combine(DataDir, name));

    internal const string Order = """
        {"type": "object", "properties": {
            "id": {"type": "integer", "minimum": -5, "maximum": 300},
            "note": {"type": "string", "maxLength": 6},
            "size": {"enum": ["S", "M", "L", null]},
            "price": {"type": "number", "minimum": 0, "maximum": 99},
            "lines": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "object",
                "properties": {"sku": {"type": "string", "pattern": "[A-Z]{2}-\\d{2}"}, "qty": {"type": "integer", "minimum": 1, "maximum": 9}},
                "required": ["sku", "qty"], "additionalProperties": false}},
            "pick": {"anyOf": [{"type": "boolean"}, {"type": "string", "format": "date"}]}},
         "required": ["id", "lines", "pick"], "additionalProperties": false}
        """;

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void MasksEqualBruteForceAlongRandomWalks(string tokenizerName)
    {
        var tokenizer = Load(tokenizerName);
        var vocabulary = TokenVocabulary.Create(tokenizer, tokenizer.VocabSize, tokenizer.EosTokenIds);
        var automaton = GrammarCompiler.Compile(new StructuredOutputsParams { Json = Order });
        var random = new Random(7);
        for (var walk = 0; walk < 2; walk++)
        {
            var tokens = new List<int>();
            var state = new GrammarState(automaton, vocabulary);
            for (var step = 0; step < 40; step++)
            {
                var allowed = Allowed(state, vocabulary);
                for (var id = 0; id < vocabulary.Size; id++)
                {
                    var probe = new GrammarState(automaton, vocabulary);
                    Assert.True(probe.SyncTo(tokens));
                    Assert.True(allowed.Contains(id) == probe.TryAccept(id), $"token {id} after {tokens.Count} tokens");
                }
                if (allowed.Count == 0 || allowed.All(vocabulary.IsEos)) break;
                tokens.Add(allowed.Where(id => !vocabulary.IsEos(id)).ElementAt(random.Next(allowed.Count(id => !vocabulary.IsEos(id)))));
                Assert.True(state.SyncTo(tokens));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void RandomWalksDecodeToValidJson(string tokenizerName)
    {
        var tokenizer = Load(tokenizerName);
        var vocabulary = TokenVocabulary.Create(tokenizer, tokenizer.VocabSize, tokenizer.EosTokenIds);
        var schema = JsonSchema.FromText(Order);
        var automaton = GrammarCompiler.Compile(new StructuredOutputsParams { Json = Order });
        var prompt = tokenizer.Encode("Answer in JSON:");
        var random = new Random(11);
        var finished = 0;
        for (var walk = 0; walk < 40; walk++)
        {
            var (tokens, ended) = RandomWalk(new GrammarState(automaton, vocabulary), vocabulary, random, maxTokens: 400);
            if (!ended) continue;
            finished++;
            var text = Decode(tokenizer, prompt, tokens);
            var result = schema.Evaluate(JsonDocument.Parse(text).RootElement, new EvaluationOptions { RequireFormatValidation = true });
            Assert.True(result.IsValid, text);
        }
        Assert.True(finished >= 30, $"only {finished} of 40 walks ended");
    }

    /// Picks uniformly among the allowed tokens, and EOS with probability one half once it is allowed.
    internal static (List<int> Tokens, bool Ended) RandomWalk(GrammarState state, TokenVocabulary vocabulary, Random random, int maxTokens)
    {
        var tokens = new List<int>();
        while (tokens.Count < maxTokens)
        {
            var allowed = Allowed(state, vocabulary);
            var eos = allowed.Where(vocabulary.IsEos).ToList();
            var others = allowed.Where(id => !vocabulary.IsEos(id)).ToList();
            if (eos.Count > 0 && (others.Count == 0 || random.Next(2) == 0)) return (tokens, true);
            tokens.Add(others[random.Next(others.Count)]);
            Assert.True(state.SyncTo(tokens));
        }
        return (tokens, false);
    }

    internal static List<int> Allowed(GrammarState state, TokenVocabulary vocabulary)
    {
        var mask = new byte[vocabulary.NumMaskBytes];
        state.WriteMask(mask);
        return Enumerable.Range(0, vocabulary.Size).Where(id => (mask[id >> 3] & (1 << (id & 7))) != 0).ToList();
    }

    /// The text the engine would stream for these tokens after the prompt.
    internal static string Decode(TextTokenizer tokenizer, IReadOnlyList<int> prompt, IEnumerable<int> tokens)
    {
        var detokenizer = tokenizer.CreateDetokenizer(prompt, skipSpecialTokens: true);
        var text = string.Concat(tokens.Select(detokenizer.Push));
        return text + detokenizer.Flush();
    }

    [Fact]
    public void RollbackAndSyncFollowTheSequenceTokens()
    {
        var tokenizer = Load("llama3");
        var vocabulary = TokenVocabulary.Create(tokenizer, tokenizer.VocabSize, tokenizer.EosTokenIds);
        var automaton = GrammarCompiler.Compile(new StructuredOutputsParams { Json = Order });
        var state = new GrammarState(automaton, vocabulary);
        var (tokens, _) = RandomWalk(state, vocabulary, new Random(3), maxTokens: 20);
        var fresh = new GrammarState(automaton, vocabulary);
        Assert.True(fresh.SyncTo(tokens[..10]));
        var maskAt10 = Allowed(fresh, vocabulary);
        Assert.True(state.SyncTo(tokens[..10])); // rolled back
        Assert.Equal(10, state.NumTokens);
        Assert.Equal(maskAt10, Allowed(state, vocabulary));
        Assert.True(state.SyncTo(tokens));
        Assert.Equal(tokens.Count, state.NumTokens);
    }

    [Fact]
    public void SpecialTokensAreNeverAllowedAndEosOnlyAtTheEnd()
    {
        var tokenizer = Load("qwen2");
        var vocabulary = TokenVocabulary.Create(tokenizer, tokenizer.VocabSize + 16, tokenizer.EosTokenIds);
        var automaton = GrammarCompiler.Compile(new StructuredOutputsParams { Choice = ["yes", "no"] });
        var state = new GrammarState(automaton, vocabulary);
        var allowed = Allowed(state, vocabulary);
        Assert.DoesNotContain(allowed, id => tokenizer.IsSpecial(id) || id >= tokenizer.VocabSize);
        Assert.True(state.SyncTo(tokenizer.Encode("yes", addSpecialTokens: false)));
        Assert.True(state.MustEnd);
        Assert.Equal(vocabulary.EosTokenIds.Order(), Allowed(state, vocabulary));
    }
}
