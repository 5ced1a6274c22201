using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Weights;
using Serving.LoadGen.Checkpoints;
using Serving.LoadGen.Commands;
using Serving.LoadGen.Tests.Support;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Serving.LoadGen.Tests.Checkpoints;

public sealed class ConvertTests(ITestOutputHelper output)
{
    [Fact]
    public void ConvertingLlamaMhaWithTwoGroupsReproducesTheReferenceAndReportsBothPerplexities()
    {
        var reference = Fixtures.Reference("llama-mha-to-gqa2");
        using var dir = new TempDirectory();
        using var text = new TempDirectory();
        File.WriteAllText(text.File("eval.txt"), string.Concat(Enumerable.Repeat("The quick brown fox jumps over the lazy dog. ", 20)));

        Assert.Equal(0, ConvertCommand.Run(Fixtures.Dir("llama-mha"), dir.Path, 2, text.File("eval.txt"), window: null));

        Assert.Equal(2, ModelConfig.Load(dir.Path).NumKeyValueHeads);
        Assert.True(File.Exists(dir.File("tokenizer.json")) && File.Exists(dir.File("tokenizer_config.json")));
        using (var checkpoint = SafetensorsCheckpoint.Open(dir.Path))
        using (var scope = NewDisposeScope())
        {
            var kSum = checkpoint.Read("model.layers.0.self_attn.k_proj.weight").to_type(float64).sum().item<double>();
            var vSum = checkpoint.Read("model.layers.0.self_attn.v_proj.weight").to_type(float64).sum().item<double>();
            Assert.Equal(reference.KProjLayer0Sum!.Value, kSum, 1e-4);
            Assert.Equal(reference.VProjLayer0Sum!.Value, vSum, 1e-4);
        }
        using var model = ModelLoader.Load(dir.Path, "float32");
        var maxError = reference.Prompts.Max(prompt => LastLogitsError(model, prompt));
        output.WriteLine($"converted llama-mha (G=2): max |last logits - reference| = {maxError:E2}");
        Assert.True(maxError <= 1e-3);
    }

    [Fact]
    public void PerplexityIsBothModelsOnTheSameTokens()
    {
        using var dir = new TempDirectory();
        Serving.Engine.Conversion.GqaConversion.ConvertCheckpoint(Fixtures.Dir("llama-mha"), dir.Path, 2);
        var text = string.Concat(Enumerable.Repeat("Hello world, this is a test of perplexity. ", 10));
        var results = ConvertCommand.EvaluateBoth(Fixtures.Dir("llama-mha"), dir.Path, text, window: 64);
        Assert.Equal([8, 2], results.Select(r => r.KVHeads));
        Assert.Equal(results[0].Result.NumPredicted, results[1].Result.NumPredicted);
        Assert.All(results, r => Assert.InRange(r.Result.Perplexity, 1.0, 10_000));
        Assert.NotEqual(results[0].Result.Perplexity, results[1].Result.Perplexity);
        output.WriteLine($"perplexity MHA {results[0].Result.Perplexity:0.00}, GQA-2 {results[1].Result.Perplexity:0.00}");
    }

    [Fact]
    public void PerplexityMatchesTheReferenceLogitsOfTheNextToken()
    {
        // NLL(prompt + [t]) - NLL(prompt) in one window is -log softmax(last_logits)[t]: known from reference.json
        using var model = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32");
        foreach (var prompt in Fixtures.Reference("llama-gqa").Prompts.Take(3))
        {
            var ids = prompt.InputIds;
            var logits = prompt.LastLogits.Select(l => (double)l).ToArray();
            const int next = 100;
            var expected = Math.Log(logits.Sum(l => Math.Exp(l - logits.Max()))) + logits.Max() - logits[next];
            var withNext = Perplexity.Evaluate(model, [.. ids, next], windowLength: 256);
            var without = Perplexity.Evaluate(model, ids, windowLength: 256);
            var nll = withNext.MeanNll * withNext.NumPredicted - without.MeanNll * without.NumPredicted;
            Assert.Equal(expected, nll, 1e-3);
        }
    }

    [Fact]
    public void WindowsRestartTheContext()
    {
        using var model = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32");
        var tokens = Enumerable.Range(10, 50).ToArray();
        var whole = Perplexity.Evaluate(model, tokens, windowLength: 50);
        var halves = Perplexity.Evaluate(model, tokens, windowLength: 25);
        Assert.Equal((1, 49L), (whole.NumWindows, whole.NumPredicted));
        Assert.Equal((2, 48L), (halves.NumWindows, halves.NumPredicted));
        var secondHalf = Perplexity.Evaluate(model, tokens[25..], windowLength: 25);
        var firstHalf = Perplexity.Evaluate(model, tokens[..25], windowLength: 25);
        Assert.Equal(firstHalf.MeanNll * 24 + secondHalf.MeanNll * 24, halves.MeanNll * 48, 1e-6);
    }

    static double LastLogitsError(LoadedModel model, FixturePrompt prompt)
    {
        var ids = prompt.InputIds;
        var expected = prompt.LastLogits;
        using var cache = model.CreateKVCache(numBlocks: 16, blockSize: 16);
        var blocks = Enumerable.Range(0, (ids.Length + 15) / 16).ToArray();
        using var scope = NewDisposeScope();
        var step = StepInputs.Build([new StepSequence(ids, 0, ids.Length, blocks)], cache.BlockSize);
        var logits = model.Forward(step, cache).data<float>().ToArray();
        return logits.Zip(expected).Max(p => Math.Abs(p.First - p.Second));
    }
}
