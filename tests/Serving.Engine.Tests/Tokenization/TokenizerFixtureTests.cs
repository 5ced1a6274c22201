using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Serving.Engine.Tests.Support;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization;

/// Every tokenizer case of ../shared/fixtures, against what tokenizers / sentencepiece gave.
public sealed class TokenizerFixtureTests
{
    static readonly ConcurrentDictionary<string, TextTokenizer> Tokenizers = new();
    static readonly ConcurrentDictionary<string, FixtureReference> References = new();

    internal static TextTokenizer Tokenizer(string model) => Tokenizers.GetOrAdd(model, m => TextTokenizer.Load(Fixtures.Dir(m)));

    static FixtureReference Reference(string model) => References.GetOrAdd(model, Fixtures.Reference);

    public static TheoryData<string, int> TokenizeCases() => Cases(r => r.Tokenize!.Count);

    public static TheoryData<string, int> PromptCases() => Cases(r => r.Prompts.Count);

    public static TheoryData<string, int> ChatCases() => Cases(r => r.Chat!.Count);

    static TheoryData<string, int> Cases(Func<FixtureReference, int> count)
    {
        var data = new TheoryData<string, int>();
        foreach (var model in Fixtures.Models)
            for (var i = 0; i < count(Reference(model)); i++) data.Add(model, i);
        return data;
    }

    [Theory]
    [MemberData(nameof(TokenizeCases))]
    public void EncodeGivesTheReferenceIds(string model, int index)
    {
        var expected = Reference(model).Tokenize![index];
        Assert.Equal(expected.Ids, Tokenizer(model).Encode(expected.Text));
    }

    [Theory]
    [MemberData(nameof(PromptCases))]
    public void PromptTextGivesItsInputIds(string model, int index)
    {
        var prompt = Reference(model).Prompts[index];
        Assert.Equal(prompt.InputIds, Tokenizer(model).Encode(prompt.Text));
    }

    [Theory]
    [MemberData(nameof(ChatCases))]
    public void RenderedChatWithoutBosGivesRenderedIds(string model, int index)
    {
        var chat = Reference(model).Chat![index];
        Assert.Equal(chat.RenderedIds, Tokenizer(model).Encode(chat.Rendered, addSpecialTokens: false));
    }

    [Theory]
    [MemberData(nameof(TokenizeCases))]
    public void DecodeOfEncodeGivesTheTextBack(string model, int index)
    {
        var text = Reference(model).Tokenize![index].Text;
        var tokenizer = Tokenizer(model);
        // sentencepiece's default normalizer drops leading/trailing spaces and collapses runs of them.
        var expected = model == "llama-sp-mqa" ? Regex.Replace(text.Trim(' '), " {2,}", " ") : text;
        Assert.Equal(expected, tokenizer.Decode(tokenizer.Encode(text, addSpecialTokens: false)));
    }

    [Theory]
    [MemberData(nameof(PromptCases))]
    public void DecodeOfGreedyTokensGivesTheReferenceText(string model, int index)
    {
        var prompt = Reference(model).Prompts[index];
        Assert.Equal(prompt.Greedy16Text, Tokenizer(model).Decode(prompt.Greedy16));
    }

    [Theory]
    [MemberData(nameof(PromptCases))]
    public void StreamingGreedyTokensAfterThePromptGivesTheReferenceText(string model, int index)
    {
        var prompt = Reference(model).Prompts[index];
        var detokenizer = Tokenizer(model).CreateDetokenizer(prompt.InputIds, skipSpecialTokens: false);
        var deltas = StreamingAssert.Stream(detokenizer, prompt.Greedy16);
        Assert.Equal(prompt.Greedy16Text, string.Concat(deltas));
        Assert.All(deltas, StreamingAssert.WholeCharacters);
    }

    [Fact]
    public void SpecialTokensAndTemplateComeFromTokenizerConfig()
    {
        var byteLevel = Tokenizer("llama-gqa");
        Assert.Equal(512, byteLevel.VocabSize);
        Assert.Null(byteLevel.BosTokenId);
        Assert.Equal("<|im_end|>", byteLevel.EosToken);
        Assert.Equal([2], byteLevel.EosTokenIds);
        Assert.StartsWith("{% for message in messages %}", byteLevel.ChatTemplate);
        Assert.True(byteLevel.IsSpecial(1));
        Assert.False(byteLevel.IsSpecial(67));

        var sentencePiece = Tokenizer("llama-sp-mqa");
        Assert.Equal(512, sentencePiece.VocabSize);
        Assert.Equal(1, sentencePiece.BosTokenId);
        Assert.Equal("<s>", sentencePiece.BosToken);
        Assert.Equal([2], sentencePiece.EosTokenIds);
        Assert.True(sentencePiece.IsSpecial(1));
    }

    [Theory]
    [InlineData("llama-gqa", "", new int[0])]
    [InlineData("llama-sp-mqa", "", new[] { 1 })]
    public void EmptyTextGivesOnlyTheAddedSpecialTokens(string model, string text, int[] expected)
    {
        Assert.Equal(expected, Tokenizer(model).Encode(text));
        Assert.Empty(Tokenizer(model).Encode(text, addSpecialTokens: false));
    }
}
