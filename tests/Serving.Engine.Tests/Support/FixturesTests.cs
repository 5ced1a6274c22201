namespace Serving.Engine.Tests.Support;

public class FixturesTests
{
    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("llama-mha")]
    [InlineData("llama-sp-mqa")]
    public void ReferenceParses(string model)
    {
        var reference = Fixtures.Reference(model);
        Assert.NotEmpty(reference.Prompts);
        Assert.All(reference.Prompts, p => Assert.Equal(16, p.Greedy16.Length));
    }
}
