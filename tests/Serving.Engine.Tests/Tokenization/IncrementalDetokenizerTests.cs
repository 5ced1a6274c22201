using Serving.Engine.Tests.Support;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization;

public sealed class IncrementalDetokenizerTests
{
    const string MultiByteText = "héllo 世界 🎉 Привет";

    public static TheoryData<string> AllTokenizers() => new([.. Fixtures.Models, .. SyntheticTokenizerTests.Names]);

    static TextTokenizer Load(string name) =>
        Fixtures.Models.Contains(name) ? TokenizerFixtureTests.Tokenizer(name) : SyntheticTokenizerTests.Tokenizer(name);

    [Theory]
    [MemberData(nameof(AllTokenizers))]
    public void MultiByteTextStreamsWholeCharactersOnly(string name)
    {
        var tokenizer = Load(name);
        var ids = tokenizer.Encode(MultiByteText, addSpecialTokens: false);
        var detokenizer = tokenizer.CreateDetokenizer([], skipSpecialTokens: true);
        var deltas = StreamingAssert.Stream(detokenizer, ids);

        Assert.Equal(tokenizer.Decode(ids, skipSpecialTokens: true), string.Concat(deltas));
        Assert.DoesNotContain(deltas, d => d.Contains('\uFFFD'));
        Assert.All(deltas, StreamingAssert.WholeCharacters);
    }

    // Characters the tiny vocabularies spell as their three UTF-8 bytes.
    [Theory]
    [InlineData("llama-gqa", "世")]
    [InlineData("llama-sp-mqa", "中")]
    public void BytesOfOneCharacterAreHeldUntilItCompletes(string name, string character)
    {
        var tokenizer = Load(name);
        var ids = tokenizer.Encode(character, addSpecialTokens: false).SkipWhile(id => tokenizer.TokenText(id).Trim().Length == 0).ToArray();
        Assert.Equal(3, ids.Length);
        var detokenizer = tokenizer.CreateDetokenizer([], skipSpecialTokens: true);
        Assert.Equal(["", "", character, ""], StreamingAssert.Stream(detokenizer, ids));
    }

    [Theory]
    [InlineData("llama-gqa", "世")]
    [InlineData("llama-sp-mqa", "中")]
    public void FlushGivesAReplacementForAnUnfinishedCharacter(string name, string character)
    {
        var tokenizer = Load(name);
        var ids = tokenizer.Encode("a" + character, addSpecialTokens: false).ToArray()[..^2];   // "a" and the first byte
        var detokenizer = tokenizer.CreateDetokenizer([], skipSpecialTokens: true);
        var deltas = StreamingAssert.Stream(detokenizer, ids);
        Assert.Equal(tokenizer.Decode(ids), string.Concat(deltas));
        Assert.Equal("\uFFFD", deltas[^1]);
    }

    [Fact]
    public void ACharacterLeftUnfinishedByThePromptIsCompletedByTheGeneratedTokens()
    {
        var tokenizer = Load("llama-gqa");
        var ids = tokenizer.Encode("ab世", addSpecialTokens: false).ToArray();
        var detokenizer = tokenizer.CreateDetokenizer(ids[..^1], skipSpecialTokens: false);
        Assert.Equal("世", detokenizer.Push(ids[^1]));
    }

    [Fact]
    public void SkippedSpecialTokensProduceNothing()
    {
        var tokenizer = Load("llama-gqa");
        var detokenizer = tokenizer.CreateDetokenizer([], skipSpecialTokens: true);
        Assert.Equal("", detokenizer.Push(2));
        var kept = tokenizer.CreateDetokenizer([], skipSpecialTokens: false);
        Assert.Equal("<|im_end|>", kept.Push(2));
    }

    [Theory]
    [InlineData("llama-gqa", 2, "<|im_end|>")]
    [InlineData("llama-sp-mqa", 262, " a")]
    [InlineData("llama2", 262, " a")]
    [InlineData("llama3", 223, " ")]
    public void TokenTextReadsAsInTheMiddleOfAText(string name, int id, string expected) =>
        Assert.Equal(expected, Load(name).TokenText(id));
}
