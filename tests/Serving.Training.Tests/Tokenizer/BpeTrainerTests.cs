using Serving.Engine.Tokenization;
using Serving.Training.Tokenizer;

namespace Serving.Training.Tests.Tokenizer;

public sealed class BpeTrainerTests
{
    [Fact]
    public void TheMostFrequentPairMergesFirst()
    {
        // words "aaab", " aaab", " ab": (a, a) occurs 4 times, then (a, b) 3 times, then (aa, ab) twice
        var trainer = new BpeTrainer();
        trainer.Add("aaab aaab ab");
        var (tokens, merges) = trainer.Train(numRegular: 259);
        Assert.Equal([("a", "a"), ("a", "b"), ("aa", "ab")], merges);
        Assert.Equal(["aa", "ab", "aaab"], tokens.Skip(256));
    }

    [Fact]
    public void MergesStopWhenNoPairOccursTwice()
    {
        var trainer = new BpeTrainer();
        trainer.Add("xy");
        Assert.Empty(trainer.Train(numRegular: 1000).Merges);
    }

    /// The trained files are read by the engine's tokenizer: any text round-trips, frequent words become single
    /// tokens, special tokens sit at the top ids, and the chat template is ChatML.
    [Fact]
    public void TheTrainedTokenizerRoundTripsTextThroughTheEnginesTokenizer()
    {
        using var dir = new TempDirectory();
        var texts = Enumerable.Range(0, 50).Select(i =>
            $"The Debian package manager installs package number {i}. Packages depend on other packages, and the manager resolves them.");
        Commands.CorpusCommands.TrainTokenizer(texts, dir.Path, vocabSize: 300, numSpecial: 8, maxChars: long.MaxValue, maxLength: 512);
        var tokenizer = TextTokenizer.Load(dir.Path);
        Assert.Equal(300, tokenizer.VocabSize);
        foreach (var text in new[] { "The package manager resolves them.", "Ünïcödé ✓ and emoji 🙂, tabs\tand\nnewlines  ", "" })
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        Assert.Single(tokenizer.Encode(" package", addSpecialTokens: false));
        Assert.Equal([293], tokenizer.EosTokenIds);
        Assert.Equal(292, tokenizer.BosTokenId);
        Assert.Empty(tokenizer.Encode("", addSpecialTokens: true));   // no BOS added to a text
        Assert.Equal([294], tokenizer.Encode("<|im_start|>", addSpecialTokens: false));
        Assert.Contains("<|im_start|>", tokenizer.ChatTemplate);
    }
}
