using Serving.Server.OpenAI;

namespace Serving.Server.Tests.OpenAI;

public sealed class LogprobsFormatTests
{
    [Fact]
    public void TokenBytesAreUtf8OrTheRawBytesOfAPartialCharacter()
    {
        Assert.Equal([104, 105], LogprobsFormat.Bytes("hi"));
        Assert.Equal([0xC3, 0xA9], LogprobsFormat.Bytes("é"));
        Assert.Equal([0xE4, 0xBD], LogprobsFormat.Bytes("bytes:\\xe4\\xbd"));
    }
}
