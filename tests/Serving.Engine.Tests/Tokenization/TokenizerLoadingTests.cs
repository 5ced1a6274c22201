using Serving.Engine.Tests.Support;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization;

/// Loading rules: what tokenizer_config.json may say, and the messages for files we cannot read faithfully.
public sealed class TokenizerLoadingTests : IDisposable
{
    readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    TextTokenizer LoadWithConfig(string configJson)
    {
        File.Copy(Path.Combine(Fixtures.Dir("llama-gqa"), "tokenizer.json"), _dir.File("tokenizer.json"));
        File.WriteAllText(_dir.File("tokenizer_config.json"), configJson);
        return TextTokenizer.Load(_dir.Path);
    }

    [Fact]
    public void ChatTemplateListGivesItsDefaultEntry()
    {
        var tokenizer = LoadWithConfig("""
            {"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}
            """);
        Assert.Equal("D", tokenizer.ChatTemplate);
    }

    [Fact]
    public void ChatTemplateJinjaBesideTheConfigIsUsedWhenTheConfigHasNone()
    {
        File.WriteAllText(_dir.File("chat_template.jinja"), "{{ messages }}");
        Assert.Equal("{{ messages }}", LoadWithConfig("{}").ChatTemplate);
    }

    [Fact]
    public void SpecialTokensWrittenAsObjectsAreReadByContent()
    {
        var tokenizer = LoadWithConfig("""
            {"bos_token": {"__type": "AddedToken", "content": "<|im_start|>"}, "eos_token": {"content": "<|im_end|>"}}
            """);
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal([2], tokenizer.EosTokenIds);
    }

    [Fact]
    public void ExplicitAddBosAndAddEosDecideTheSpecialTokensAroundAText()
    {
        var tokenizer = LoadWithConfig("""
            {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "add_bos_token": true, "add_eos_token": true}
            """);
        var ids = tokenizer.Encode("Hello world");
        Assert.Equal(1, ids[0]);
        Assert.Equal(2, ids[^1]);
        Assert.Equal(tokenizer.Encode("Hello world", addSpecialTokens: false), ids.Skip(1).SkipLast(1));
    }

    [Fact]
    public void ExtraEosIdsFromTheModelConfigAreMerged()
    {
        var tokenizer = LoadWithConfig("""{"eos_token": "<|im_end|>"}""").WithExtraEosTokenIds([0, 2]);
        Assert.Equal([2, 0], tokenizer.EosTokenIds);
    }

    [Fact]
    public void AFolderWithoutATokenizerIsRefusedWithItsPath()
    {
        var error = Assert.Throws<ModelLoadException>(() => TextTokenizer.Load(_dir.Path));
        Assert.Contains(_dir.Path, error.Message);
    }

    [Theory]
    [InlineData("tokenizer.json", "not json at all")]
    [InlineData("tokenizer.json", "{\"model\": 5}")]
    [InlineData("tokenizer_config.json", "{ broken")]
    public void AGarbageTokenizerFileIsRefusedNamingTheFile(string file, string content)
    {
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(Fixtures.Dir("llama-gqa"), name), _dir.File(name), overwrite: true);
        File.WriteAllText(_dir.File(file), content);
        var error = Assert.Throws<ModelLoadException>(() => TextTokenizer.Load(_dir.Path));
        Assert.Contains(_dir.File(file), error.Message);
    }

    [Theory]
    [InlineData("\"model\": {\"type\": \"Unigram\"", "model type 'Unigram'")]
    [InlineData("\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"", "pre_tokenizer type 'BertPreTokenizer'")]
    [InlineData("\"decoder\": {\"type\": \"WordPiece\"", "decoder type 'WordPiece'")]
    public void UnsupportedPartsOfTokenizerJsonAreRefusedByName(string replacement, string message)
    {
        var json = File.ReadAllText(Path.Combine(Fixtures.Dir("llama-gqa"), "tokenizer.json"));
        var property = replacement[..(replacement.IndexOf(':') + 1)];
        var start = json.IndexOf(property, StringComparison.Ordinal);
        Assert.True(start >= 0, property);
        var typeStart = json.IndexOf("\"type\"", start, StringComparison.Ordinal);
        var typeEnd = json.IndexOf(',', typeStart);
        File.WriteAllText(_dir.File("tokenizer.json"), json[..start] + replacement + json[typeEnd..]);
        var error = Assert.Throws<ModelLoadException>(() => TextTokenizer.Load(_dir.Path));
        Assert.IsType<NotSupportedException>(error.InnerException);
        Assert.Contains(message, error.Message);
    }
}
