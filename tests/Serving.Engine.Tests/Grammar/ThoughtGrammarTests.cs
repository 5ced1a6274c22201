using System.Text;
using Serving.Engine.Grammar;

namespace Serving.Engine.Tests.Grammar;

/// A constraint after thinking: any text up to the first </think>, then the constraint, byte by byte and token by
/// token over a real vocabulary.
public sealed class ThoughtGrammarTests
{
    static readonly StructuredOutputsParams TwoLetters = new() { Regex = "[a-z]{2}", ThinksUntil = "</think>" };

    /// Another model's tag (Seed-OSS's): its own thinking's end, not </think>, opens the constraint.
    [Fact]
    public void TheThinkingEndsAtTheTagItIsGiven()
    {
        var seed = TwoLetters with { ThinksUntil = "</seed:think>" };
        Assert.True(GrammarAutomatonTests.Matches(seed, "<seed:think>a </think> b</seed:think>ab"));
        Assert.True(GrammarAutomatonTests.Matches(seed, "</seed:thin</seed:think>ab"));
        Assert.False(GrammarAutomatonTests.Matches(seed, "x</think>ab"));
        Assert.False(GrammarAutomatonTests.Matches(seed, "x</seed:think>abc"));
    }

    /// Every text up to 8 bytes over the tag's own bytes (and one other) and some longer ones: accepted exactly when
    /// it is a thought that ends at its first </think>, followed by two letters.
    [Fact]
    public void AcceptsExactlyAThoughtClosedOnceThenTheConstraint()
    {
        var texts = new List<string>();
        void All(string prefix, int length)
        {
            texts.Add(prefix);
            if (length == 0) return;
            foreach (var c in "</tk>x") All(prefix + c, length - 1);
        }
        All("", 6);
        var random = new Random(11);
        const string alphabet = "</think>xé\n";
        for (var i = 0; i < 3000; i++)
            texts.Add(new string([.. Enumerable.Range(0, random.Next(1, 30)).Select(_ => alphabet[random.Next(alphabet.Length)])]));
        texts.AddRange(["</think>ab", "<</think>ab", "</</think>ab", "</thin</think>ab", "<think>hmm</think>ab",
            "a</think>ab</think>", "</think></think>ab", "</thinK></think>ab"]);
        foreach (var thought in texts)
            foreach (var answer in new[] { "ab", "abc", "", "</think>ab" })
            {
                var text = thought + answer;
                var close = text.IndexOf("</think>", StringComparison.Ordinal);
                var expected = close >= 0 && System.Text.RegularExpressions.Regex.IsMatch(text[(close + "</think>".Length)..], "^[a-z]{2}$");
                Assert.True(expected == GrammarAutomatonTests.Matches(TwoLetters, text), $"'{text}'");
            }
    }

    [Fact]
    public void OverARealVocabularyTheMaskLetsTheModelThinkThenHoldsItToTheConstraint()
    {
        var tokenizer = TokenMaskTests.Load("fixture:llama-gqa");
        var vocabulary = TokenVocabulary.Create(tokenizer, tokenizer.VocabSize, tokenizer.EosTokenIds);
        var automaton = GrammarCompiler.Compile(TwoLetters);
        var eos = tokenizer.EosTokenIds[0];

        var thought = tokenizer.Encode("Let me think: {\"a\": 1} is not it.\n", addSpecialTokens: false);
        var state = new GrammarState(automaton, vocabulary);
        Assert.True(state.SyncTo(thought));
        // while thinking every token that spells text may come (not EOS, nor a special token that writes nothing)
        var text = Enumerable.Range(0, vocabulary.Size).Where(id => vocabulary.Bytes(id) is not null && !vocabulary.IsEos(id));
        Assert.Equal(text, TokenMaskTests.Allowed(state, vocabulary));

        var closed = thought.Concat(tokenizer.Encode("</think>", addSpecialTokens: false)).ToList();
        Assert.True(state.SyncTo(closed));
        // after </think> only what starts two letters
        foreach (var id in TokenMaskTests.Allowed(state, vocabulary))
            Assert.Matches("^[a-z]{1,2}$", tokenizer.Decode([id]));
        Assert.True(state.SyncTo([.. closed, .. tokenizer.Encode("ok", addSpecialTokens: false), eos]));
        Assert.False(new GrammarState(automaton, vocabulary).SyncTo([.. closed, .. tokenizer.Encode("okay", addSpecialTokens: false)]));
    }

    /// An opening (AfterTokens, gpt-oss's `<|channel|>final<|message|>`): every token may come, EOS and tokens that
    /// spell nothing included, until the output has written the opening's tokens in a row (a partial match that breaks
    /// off, or that restarts inside itself, opens nothing); then the grammar holds. Rolling back before the opening
    /// frees the output again.
    [Fact]
    public void AnOpeningFreesTheOutputUntilItsTokensAreWrittenThenTheGrammarHolds()
    {
        var tokenizer = TokenMaskTests.Load("fixture:llama-gqa");
        var vocabulary = TokenVocabulary.Create(tokenizer, tokenizer.VocabSize, tokenizer.EosTokenIds);
        var automaton = GrammarCompiler.Compile(new StructuredOutputsParams { Regex = "[a-z]{2}" });
        var (a, b, c, eos) = (10, 11, 12, tokenizer.EosTokenIds[0]);
        var everything = Enumerable.Range(0, vocabulary.Size).ToArray();
        var state = new GrammarState(automaton, vocabulary, opening: [a, a, b]);

        // a a a b: the third a restarts the match inside the opening (KMP's fallback), so a a b is written at its end
        foreach (var token in new[] { c, a, a, c, a, eos, a, a })
        {
            Assert.True(state.TryAccept(token));
            Assert.Equal(everything, TokenMaskTests.Allowed(state, vocabulary));
            Assert.False(state.MustEnd);
        }
        Assert.True(state.TryAccept(a));
        Assert.Equal(everything, TokenMaskTests.Allowed(state, vocabulary));
        Assert.True(state.TryAccept(b));
        var letters = TokenMaskTests.Allowed(state, vocabulary);
        Assert.NotEmpty(letters);
        Assert.All(letters, id => Assert.Matches("^[a-z]{1,2}$", tokenizer.Decode([id])));
        Assert.False(state.TryAccept(eos));   // the grammar holds: not before two letters
        var ok = tokenizer.Encode("ok", addSpecialTokens: false);
        Assert.All(ok, token => Assert.True(state.TryAccept(token)));
        Assert.True(state.MustEnd);

        // back before the opening's last token: free again; a different token there opens nothing
        state.Rollback(1 + ok.Count);
        Assert.Equal(everything, TokenMaskTests.Allowed(state, vocabulary));
        Assert.True(state.SyncTo([c, a, a, c, a, eos, a, a, a, c, c]));
        Assert.Equal(everything, TokenMaskTests.Allowed(state, vocabulary));
    }
}
