using Serving.Engine.Sampling;

namespace Serving.Engine.Tests.Sampling;

public class StopStringMatcherTests
{
    [Fact]
    public void AStopStringSplitAcrossDeltasIsDetectedAndNeverEmitted()
    {
        var matcher = new StopStringMatcher(["</end>"]);

        Assert.Equal(new StopStringMatch("Hello ", null), matcher.Append("Hello </"));
        Assert.Equal("</", matcher.HeldText);
        Assert.Equal(new StopStringMatch("", null), matcher.Append("en"));
        Assert.Equal(new StopStringMatch("", "</end>"), matcher.Append("d> and more"));
        Assert.True(matcher.IsStopped);
        Assert.Throws<InvalidOperationException>(() => matcher.Append("x"));
    }

    [Fact]
    public void HeldTextIsReleasedWhenItTurnsOutNotToBeAStopString()
    {
        var matcher = new StopStringMatcher(["###"]);

        Assert.Equal("a", matcher.Append("a#").Text);
        Assert.Equal("", matcher.Append("#").Text);
        Assert.Equal("##", matcher.HeldText);
        Assert.Equal(new StopStringMatch("##b", null), matcher.Append("b#"));
        Assert.Equal("#", matcher.HeldText);
        Assert.Equal("#", matcher.Flush());
        Assert.False(matcher.IsStopped);
    }

    [Fact]
    public void OnlyATailThatCanStartAStopStringIsHeld()
    {
        var matcher = new StopStringMatcher(["abc", "xyz"]);

        Assert.Equal(new StopStringMatch("hello ", null), matcher.Append("hello ab"));
        Assert.Equal("ab", matcher.HeldText);
        Assert.Equal(new StopStringMatch("abd ", null), matcher.Append("d xy"));
        Assert.Equal("xy", matcher.HeldText);
        Assert.Equal(new StopStringMatch("xyy", null), matcher.Append("y"));
        Assert.Equal("", matcher.HeldText);
    }

    [Fact]
    public void TheEarliestStopStringWinsAndTextAfterItIsDropped()
    {
        var matcher = new StopStringMatcher(["world", "lo"]);

        Assert.Equal(new StopStringMatch("hel", "lo"), matcher.Append("hello world"));
    }

    [Fact]
    public void IncludeStopStringKeepsTheMatchInTheOutput()
    {
        var matcher = new StopStringMatcher(["STOP"], includeStopStringInOutput: true);

        Assert.Equal(new StopStringMatch("go ", null), matcher.Append("go ST"));
        Assert.Equal(new StopStringMatch("STOP", "STOP"), matcher.Append("OP now"));
    }

    [Fact]
    public void WithoutStopStringsTextPassesThrough()
    {
        var matcher = new StopStringMatcher([]);

        Assert.Equal(new StopStringMatch("anything", null), matcher.Append("anything"));
        Assert.Equal("", matcher.Flush());
    }

    [Fact]
    public void ConcatenatedOutputEqualsTheTextCutAtTheFirstStop()
    {
        const string text = "The answer is 42.\nObservation: done\nmore";
        string[] deltas = ["The ans", "wer is 4", "2.\nObs", "ervat", "ion: done\nmore"];
        var matcher = new StopStringMatcher(["Observation:", "\n\n"]);

        var emitted = string.Concat(deltas.TakeWhile(_ => !matcher.IsStopped).Select(d => matcher.Append(d).Text));

        Assert.Equal(text[..text.IndexOf("Observation:", StringComparison.Ordinal)], emitted);
    }
}
