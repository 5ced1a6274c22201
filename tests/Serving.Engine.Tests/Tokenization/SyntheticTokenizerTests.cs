using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization;

/// tokenizer.json files in the shapes real checkpoints ship, built on the fixtures' tiny vocabularies by
/// Data/make-synthetic.mjs, with the ids and texts Hugging Face tokenizers 0.23.2 gave on them (expected.json):
///   llama3    Split(Llama-3 regex) + ByteLevel, ignore_merges, [a, b] merges, TemplateProcessing BOS
///   qwen2     NFC, Split(Qwen2 regex) + ByteLevel, "a b" merges, a non-special added token
///   llama2    Prepend/Replace normalizer, byte_fallback BPE, Replace/ByteFallback/Fuse/Strip decoder
///   metaspace Metaspace pre-tokenizer (prepend_scheme first, split) and Metaspace decoder
public sealed class SyntheticTokenizerTests
{
    public static readonly string[] Names = ["llama3", "qwen2", "llama2", "metaspace"];

    static readonly ConcurrentDictionary<string, TextTokenizer> Tokenizers = new();

    internal static TextTokenizer Tokenizer(string name) => Tokenizers.GetOrAdd(name, n => TextTokenizer.Load(Dir(n)));

    static SyntheticExpectations Expected(string name) =>
        JsonSerializer.Deserialize<SyntheticExpectations>(File.ReadAllText(Path.Combine(Dir(name), "expected.json")))!;

    /// Data/<name>, copied beside the test assembly (see the .csproj).
    internal static string Dir(string name) => Path.Combine(AppContext.BaseDirectory, "Tokenization", "Data", name);

    public static TheoryData<string, int> EncodeCases() => Cases(e => e.Encode.Count);

    public static TheoryData<string, int> DecodeCases() => Cases(e => e.Decode.Count);

    static TheoryData<string, int> Cases(Func<SyntheticExpectations, int> count)
    {
        var data = new TheoryData<string, int>();
        foreach (var name in Names)
            for (var i = 0; i < count(Expected(name)); i++) data.Add(name, i);
        return data;
    }

    [Theory]
    [MemberData(nameof(EncodeCases))]
    public void EncodeGivesTheReferenceIds(string name, int index)
    {
        var expected = Expected(name).Encode[index];
        var tokenizer = Tokenizer(name);
        Assert.Equal(expected.Ids, tokenizer.Encode(expected.Text, addSpecialTokens: false));
        Assert.Equal(expected.IdsWithSpecial, tokenizer.Encode(expected.Text));
    }

    [Theory]
    [MemberData(nameof(EncodeCases))]
    public void DecodeGivesTheReferenceText(string name, int index)
    {
        var expected = Expected(name).Encode[index];
        var tokenizer = Tokenizer(name);
        Assert.Equal(expected.Decoded, tokenizer.Decode(expected.IdsWithSpecial));
        Assert.Equal(expected.DecodedSkipSpecial, tokenizer.Decode(expected.IdsWithSpecial, skipSpecialTokens: true));
    }

    [Theory]
    [MemberData(nameof(DecodeCases))]
    public void DecodeOfRandomIdsGivesTheReferenceText(string name, int index)
    {
        var expected = Expected(name).Decode[index];
        Assert.Equal(expected.Text, Tokenizer(name).Decode(expected.Ids));
        Assert.Equal(expected.TextSkipSpecial, Tokenizer(name).Decode(expected.Ids, skipSpecialTokens: true));
    }

    [Theory]
    [MemberData(nameof(DecodeCases))]
    public void StreamingRandomIdsGivesTheReferenceText(string name, int index)
    {
        var expected = Expected(name).Decode[index];
        foreach (var skip in new[] { false, true })
        {
            var detokenizer = Tokenizer(name).CreateDetokenizer([], skip);
            var deltas = StreamingAssert.Stream(detokenizer, expected.Ids);
            Assert.Equal(skip ? expected.TextSkipSpecial : expected.Text, string.Concat(deltas));
            Assert.All(deltas, StreamingAssert.WholeCharacters);
        }
    }

    [Theory]
    [MemberData(nameof(SyntheticNames))]
    public void VocabSizeCountsAddedTokens(string name) => Assert.Equal(Expected(name).VocabSize, Tokenizer(name).VocabSize);

    public static TheoryData<string> SyntheticNames() => new(Names);

    [Fact]
    public void Llama3StyleFileAddsBeginOfTextAndStopsOnEot()
    {
        var tokenizer = Tokenizer("llama3");
        Assert.Equal(0, tokenizer.BosTokenId);
        Assert.Equal("<|begin_of_text|>", tokenizer.BosToken);
        Assert.Equal([2], tokenizer.EosTokenIds);
        Assert.Equal(0, tokenizer.Encode("Hi")[0]);
        Assert.NotEqual(0, tokenizer.Encode("Hi", addSpecialTokens: false)[0]);
    }

    [Fact]
    public void Llama2StyleFileKeepsTheSpaceAfterThePromptWhenStreaming()
    {
        var tokenizer = Tokenizer("llama2");
        var prompt = tokenizer.Encode("Hello");
        var generated = tokenizer.Encode(" world", addSpecialTokens: false).Skip(1).ToArray();   // drop the "▁" the normalizer prepends
        Assert.Equal("world", tokenizer.Decode(generated));
        var detokenizer = tokenizer.CreateDetokenizer(prompt, skipSpecialTokens: true);
        Assert.Equal(" world", string.Concat(StreamingAssert.Stream(detokenizer, generated)));
    }
}

public sealed record SyntheticExpectations(
    [property: JsonPropertyName("vocab_size")] int VocabSize,
    [property: JsonPropertyName("encode")] IReadOnlyList<SyntheticEncodeCase> Encode,
    [property: JsonPropertyName("decode")] IReadOnlyList<SyntheticDecodeCase> Decode);

public sealed record SyntheticEncodeCase(
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("ids")] int[] Ids,
    [property: JsonPropertyName("ids_with_special")] int[] IdsWithSpecial,
    [property: JsonPropertyName("decoded")] string Decoded,
    [property: JsonPropertyName("decoded_skip_special")] string DecodedSkipSpecial);

public sealed record SyntheticDecodeCase(
    [property: JsonPropertyName("ids")] int[] Ids,
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("text_skip_special")] string TextSkipSpecial);
