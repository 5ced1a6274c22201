using Serving.Engine.Config;
using Serving.Engine.Conversion;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Conversion;

public sealed class GqaConversionTests(ITestOutputHelper output)
{
    [Fact]
    public void ConvertingLlamaMhaToTwoGroupsReproducesTheReference()
    {
        var reference = Fixtures.Reference("llama-mha-to-gqa2");
        using var dir = new TempDirectory();
        GqaConversion.ConvertCheckpoint(Fixtures.Dir("llama-mha"), dir.Path, numGroups: 2);

        Assert.Equal(2, ModelConfig.Load(dir.Path).NumKeyValueHeads);
        Assert.True(File.Exists(dir.File("tokenizer.json")));
        using (var checkpoint = SafetensorsCheckpoint.Open(dir.Path))
        using (var scope = NewDisposeScope())
        {
            var kSum = checkpoint.Read("model.layers.0.self_attn.k_proj.weight").to_type(float64).sum().item<double>();
            var vSum = checkpoint.Read("model.layers.0.self_attn.v_proj.weight").to_type(float64).sum().item<double>();
            output.WriteLine($"k_proj sum {kSum} (ref {reference.KProjLayer0Sum}), v_proj sum {vSum} (ref {reference.VProjLayer0Sum})");
            Assert.Equal(reference.KProjLayer0Sum!.Value, kSum, 1e-4);
            Assert.Equal(reference.VProjLayer0Sum!.Value, vSum, 1e-4);
            Assert.Equal([16L, 64], checkpoint.Info("model.layers.1.self_attn.k_proj.weight").Shape);
        }

        using var model = ModelLoader.Load(dir.Path, "float32");
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 8);
        var maxError = 0.0;
        foreach (var prompt in reference.Prompts)
        {
            var runner = new PagedRunner(model, cache);
            var seq = runner.Add(prompt.InputIds);
            var logits = runner.Step([(seq, prompt.InputIds.Length)])[0];
            maxError = Math.Max(maxError, logits.Zip(prompt.LastLogits).Max(p => Math.Abs((double)p.First - p.Second)));
            runner.Append(seq, PagedRunner.ArgMax(logits));
            int[] greedy = [PagedRunner.ArgMax(logits), .. runner.Greedy(seq, 15)];
            Assert.Equal(prompt.Greedy16, greedy);
        }
        output.WriteLine($"converted llama-mha (G=2): max |last logits - reference| = {maxError:E2}");
        Assert.True(maxError <= 1e-3);
    }

    [Fact]
    public void PoolingAveragesContiguousHeadGroups()
    {
        using var scope = NewDisposeScope();
        // 4 KV heads of head dim 1, two input features: rows are heads 0..3
        var weight = tensor(new float[] { 1, 10, 3, 30, 5, 50, 7, 70 }).view(4, 2);
        Assert.Equal(new float[] { 2, 20, 6, 60 }, GqaConversion.PoolHeads(weight, 4, 1, 2).data<float>().ToArray());
        Assert.Equal(new float[] { 4, 40 }, GqaConversion.PoolHeads(weight, 4, 1, 1).data<float>().ToArray());  // MQA
        var bias = tensor(new float[] { 1, 2, 3, 4, 5, 6, 7, 8 });  // 2 heads of head dim 4
        Assert.Equal(new float[] { 3, 4, 5, 6 }, GqaConversion.PoolHeads(bias, 2, 4, 1).data<float>().ToArray());
    }

    [Fact]
    public void OneGroupGivesMqaAndTheStateDictKeepsOtherTensors()
    {
        var config = ModelConfig.Load(Fixtures.Dir("llama-mha"));
        using var checkpoint = SafetensorsCheckpoint.Open(Fixtures.Dir("llama-mha"));
        using var scope = NewDisposeScope();
        var stateDict = checkpoint.TensorNames.ToDictionary(name => name, checkpoint.Read);
        var converted = GqaConversion.ConvertStateDict(stateDict, config, numGroups: 1);
        Assert.Equal([8L, 64], converted["model.layers.0.self_attn.v_proj.weight"].shape);
        Assert.Same(stateDict["model.layers.0.self_attn.q_proj.weight"], converted["model.layers.0.self_attn.q_proj.weight"]);
        var expected = stateDict["model.layers.0.self_attn.k_proj.weight"].view(8, 8, 64).mean([0]);
        Assert.True(converted["model.layers.0.self_attn.k_proj.weight"].allclose(expected));
    }

    [Fact]
    public void TheAblationInitsTakeTheFirstHeadOrRandomValuesOfTheSameScale()
    {
        using var scope = NewDisposeScope();
        var weight = tensor(new float[] { 1, 10, 3, 30, 5, 50, 7, 70 }).view(4, 2);
        Assert.Equal(new float[] { 1, 10, 5, 50 }, GqaConversion.PoolHeads(weight, 4, 1, 2, KVHeadInit.FirstHead).data<float>().ToArray());
        var large = randn(64, 32) * 3.0;
        using var generator = new TorchSharp.torch.Generator(7);
        var random = GqaConversion.PoolHeads(large, 8, 8, 2, KVHeadInit.Random, generator);
        Assert.Equal([16L, 32], random.shape);
        Assert.InRange(random.std().item<float>(), 2.5f, 3.5f);
    }

    /// Phi-3 checkpoints store q/k/v in one qkv_proj: the conversion pools the K and V rows inside it, and the
    /// converted model computes what the converted split checkpoint computes.
    [Fact]
    public void FusedQkvCheckpointsConvertTheirKeyAndValueRows()
    {
        var config = ModelConfig.Load(Fixtures.Dir("llama-mha"));
        using var checkpoint = SafetensorsCheckpoint.Open(Fixtures.Dir("llama-mha"));
        using var scope = NewDisposeScope();
        var split = checkpoint.TensorNames.ToDictionary(name => name, checkpoint.Read);
        var p = "model.layers.0.self_attn.";
        var fused = new Dictionary<string, Tensor>(split.Where(pair => !pair.Key.StartsWith(p, StringComparison.Ordinal) || pair.Key.Contains("o_proj")))
        {
            [p + "qkv_proj.weight"] = cat([split[p + "q_proj.weight"], split[p + "k_proj.weight"], split[p + "v_proj.weight"]]),
        };
        var phi3 = config with { Architectures = ["Phi3ForCausalLM"], ModelType = "phi3" };
        var convertedFused = GqaConversion.ConvertStateDict(fused, phi3, numGroups: 2)[p + "qkv_proj.weight"];
        var convertedSplit = GqaConversion.ConvertStateDict(split, config, numGroups: 2);
        var expected = cat([convertedSplit[p + "q_proj.weight"], convertedSplit[p + "k_proj.weight"], convertedSplit[p + "v_proj.weight"]]);
        Assert.Equal([64L + 16 + 16, 64], convertedFused.shape);
        Assert.True(convertedFused.equal(expected).all().item<bool>());
    }

    [Fact]
    public void GroupsThatDoNotDivideTheHeadsAreRefused()
    {
        using var dir = new TempDirectory();
        var error = Assert.Throws<ArgumentException>(() => GqaConversion.ConvertCheckpoint(Fixtures.Dir("llama-mha"), dir.Path, 3));
        Assert.Contains("G = 3 must divide the 8 key/value heads", error.Message);
        Assert.Throws<ArgumentException>(() => GqaConversion.CheckGroups(ModelConfig.Load(Fixtures.Dir("llama-mha")), 0));
    }
}
