using System.Text.Json.Nodes;
using Serving.Engine.Tokenization;
using Serving.LoadGen.Datasets;
using Serving.LoadGen.Tests.Support;

namespace Serving.LoadGen.Tests.Datasets;

public sealed class DatasetTests
{
    static readonly TextTokenizer Tokenizer = TextTokenizer.Load(Fixtures.Dir("llama-gqa"));
    static readonly TokenSpace Tokens = new(Tokenizer.VocabSize, Tokenizer);

    [Fact]
    public void RandomLengthsStayInTheRangeAndPromptsAvoidSpecialTokens()
    {
        var options = new DatasetOptions { NumPrompts = 300, RandomInputLen = 100, RandomOutputLen = 20, RandomRangeRatio = 0.5, Seed = 3 };
        var requests = DatasetFactory.Create(options, Tokens);
        Assert.Equal(300, requests.Count);
        Assert.All(requests, r =>
        {
            Assert.InRange(r.PromptLength, 50, 150);
            Assert.InRange(r.OutputLength, 10, 30);
            Assert.Equal(r.PromptLength, r.Prompt.TokenIds!.Count);
            Assert.DoesNotContain(r.Prompt.TokenIds, Tokenizer.IsSpecial);
        });
        Assert.True(requests.Select(r => r.PromptLength).Distinct().Count() > 50, "lengths should spread over the range");
        Assert.Equal(Enumerable.Range(0, 300), requests.Select(r => r.Index));
    }

    [Fact]
    public void TheSameSeedGivesTheSamePrompts()
    {
        var options = new DatasetOptions { NumPrompts = 20, RandomInputLen = 30, RandomRangeRatio = 0.2, Seed = 9 };
        var first = DatasetFactory.Create(options, Tokens);
        var second = DatasetFactory.Create(options, Tokens);
        Assert.Equal(first.Select(r => r.Prompt.TokenIds!), second.Select(r => r.Prompt.TokenIds!));
        Assert.NotEqual(first.Select(r => r.Prompt.TokenIds!), DatasetFactory.Create(options with { Seed = 10 }, Tokens).Select(r => r.Prompt.TokenIds!));
    }

    [Fact]
    public void TextPromptsAreTheDecodedIds()
    {
        var options = new DatasetOptions { NumPrompts = 5, RandomInputLen = 40, Format = PromptFormat.Text, Seed = 1 };
        var ids = DatasetFactory.Create(options with { Format = PromptFormat.Ids }, Tokens);
        var texts = DatasetFactory.Create(options, Tokens);
        Assert.Equal(ids.Select(r => Tokenizer.Decode(r.Prompt.TokenIds!, skipSpecialTokens: true)), texts.Select(r => r.Prompt.Text!));
    }

    [Fact]
    public void PrefixRepetitionGroupsShareTheirPrefix()
    {
        var options = new DatasetOptions { Name = "prefix-repetition", NumPrompts = 40, NumPrefixes = 4, PrefixLen = 32, SuffixLen = 8, RandomOutputLen = 16, Seed = 2 };
        var requests = DatasetFactory.Create(options, Tokens);
        var groups = requests.GroupBy(r => string.Join(",", r.Prompt.TokenIds!.Take(32))).ToArray();
        Assert.Equal(4, groups.Length);
        Assert.All(groups, g => Assert.Equal(10, g.Count()));
        Assert.All(requests, r => Assert.Equal((40, 16), (r.PromptLength, r.OutputLength)));
        // suffixes differ inside a group, and the groups are interleaved rather than in runs
        Assert.All(groups, g => Assert.Equal(10, g.Select(r => string.Join(",", r.Prompt.TokenIds!.Skip(32))).Distinct().Count()));
        Assert.True(requests.Zip(requests.Skip(1)).Count(p => !p.First.Prompt.TokenIds!.Take(32).SequenceEqual(p.Second.Prompt.TokenIds!.Take(32))) > 10);
    }

    [Fact]
    public void ShareGptTakesFirstTurnsAndSkipsTooShortPairs()
    {
        using var dir = new TempDirectory();
        var conversation = (string human, string gpt) => new JsonObject
        {
            ["conversations"] = new JsonArray(new JsonObject { ["from"] = "human", ["value"] = human }, new JsonObject { ["from"] = "gpt", ["value"] = gpt }),
        };
        var file = new JsonArray(
            conversation("Tell me about the weather in the mountains today.", "It is sunny with a light breeze over the peaks."),
            conversation("hi", "hello there, how are you doing today my friend?"),
            conversation("Write a short poem about the sea and the stars.", "The sea is deep, the stars are bright, they meet at night."),
            new JsonObject { ["conversations"] = new JsonArray(new JsonObject { ["from"] = "human", ["value"] = "only one turn here" }) });
        File.WriteAllText(dir.File("sharegpt.json"), file.ToJsonString());
        var options = new DatasetOptions { Name = "sharegpt", DatasetPath = dir.File("sharegpt.json"), NumPrompts = 2, Seed = 0 };
        var requests = DatasetFactory.Create(options, Tokens);
        Assert.Equal(2, requests.Count);
        Assert.All(requests, r =>
        {
            Assert.True(r.PromptLength >= 4);
            Assert.Equal(Tokenizer.Encode(Tokenizer.Decode(r.Prompt.TokenIds!)).Count, r.PromptLength);
        });
        Assert.Throws<ArgumentException>(() => DatasetFactory.Create(options with { NumPrompts = 3 }, Tokens));
    }
}
