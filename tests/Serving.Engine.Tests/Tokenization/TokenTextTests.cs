using Serving.Engine.Tests.Support;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization;

public class TokenTextTests
{
    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("llama-sp-mqa")]
    public void ATokenThatIsPartOfACharacterReadsAsItsBytes(string fixture)
    {
        var tokenizer = TextTokenizer.Load(Fixtures.Dir(fixture));
        var ids = tokenizer.Encode("中文字符和日本語", addSpecialTokens: false);
        var partial = ids.Select(tokenizer.TokenText).Where(text => text.StartsWith("bytes:", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(partial); // CJK characters are spelled by byte tokens in these tiny vocabularies
        Assert.All(partial, text => Assert.Matches(@"^bytes:(\\x[0-9a-f]{2})+$", text));
    }
}
