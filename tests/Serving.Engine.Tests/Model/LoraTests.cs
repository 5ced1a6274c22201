using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Model.Lora;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Model;

/// PEFT LoRA adapters: a sequence that runs with an adapter gets exactly the logits of the checkpoint with the
/// adapter merged into its weights (W + scale B A, written out by LoraFixture), whatever else shares its step; base
/// sequences in the same step are untouched. Adapters the engine cannot apply are refused naming why.
public sealed class LoraTests
{
    static float MaxDifference(float[] a, float[] b) => a.Zip(b).Max(p => Math.Abs(p.First - p.Second));

    [Theory]
    [InlineData("llama-gqa", false)]
    [InlineData("qwen3-gqa", true)]
    public void AnAdapterAnswersAsItsMergedCheckpointBesideTheBaseModel(string fixture, bool rsLora)
    {
        using var lora = LoraFixture.Create(fixture, rsLora: rsLora);
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "float32");
        model.LoadLoraAdapters([new LoraAdapterSource("tuned", lora.Adapter.Path)], maxRank: 16);
        using var merged = ModelLoader.Load(lora.Merged.Path, "float32");
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 4);
        using var mergedCache = merged.CreateKVCache(numBlocks: 64, blockSize: 4);
        var runner = new PagedRunner(model, cache);
        var reference = new PagedRunner(merged, mergedCache);
        foreach (var prompt in Fixtures.Reference(fixture).Prompts)
        {
            // base, adapter and base again in one step: each row gets its own model's logits
            var (before, tuned, after) = (runner.Add(prompt.InputIds), runner.Add(prompt.InputIds, adapter: 0), runner.Add(prompt.InputIds));
            var logits = runner.Step([(before, prompt.InputIds.Length), (tuned, prompt.InputIds.Length), (after, prompt.InputIds.Length)]);
            var expected = reference.Step([(reference.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
            Assert.True(MaxDifference(expected, logits[1]) <= 1e-4, $"adapter vs merged: {MaxDifference(expected, logits[1])}");
            Assert.True(MaxDifference(prompt.LastLogits, logits[0]) <= 1e-4, $"base: {MaxDifference(prompt.LastLogits, logits[0])}");
            Assert.True(MaxDifference(prompt.LastLogits, logits[2]) <= 1e-4);
            Assert.True(MaxDifference(prompt.LastLogits, logits[1]) > 1e-3, "the adapter changes the answer");
        }
    }

    /// Apertus's MLP has no gate: an adapter's up_proj is the whole of its first MLP projection.
    [Fact]
    public void AnAdapterOnAnMlpWithoutAGateAnswersAsItsMergedCheckpoint()
    {
        using var folder = new TempDirectory();
        Architectures.LlamaVariantsTests.Write(Architectures.LlamaVariantsTests.Family.Apertus, folder.Path);
        using var lora = LoraFixture.Create(folder.Path, projections: ["q_proj", "up_proj", "down_proj"], seed: 5);
        using var model = ModelLoader.Load(folder.Path, "float32");
        model.LoadLoraAdapters([new LoraAdapterSource("tuned", lora.Adapter.Path)], maxRank: 16);
        AssertAnswersAsMerged(model, lora);
    }

    // a step of one prompt with and without the model's first adapter: with it, the merged checkpoint's logits
    static void AssertAnswersAsMerged(LoadedModel model, LoraFixture lora)
    {
        using var merged = ModelLoader.Load(lora.Merged.Path, "float32");
        using var cache = model.CreateKVCache(numBlocks: 16, blockSize: 4);
        using var mergedCache = merged.CreateKVCache(numBlocks: 16, blockSize: 4);
        var (runner, reference) = (new PagedRunner(model, cache), new PagedRunner(merged, mergedCache));
        int[] prompt = [1, 17, 305, 42, 9, 77];
        var logits = runner.Step([(runner.Add(prompt), prompt.Length), (runner.Add(prompt, adapter: 0), prompt.Length)]);
        var expected = reference.Step([(reference.Add(prompt), prompt.Length)])[0];
        Assert.True(MaxDifference(expected, logits[1]) <= 1e-4, $"adapter vs merged: {MaxDifference(expected, logits[1])}");
        Assert.True(MaxDifference(logits[0], logits[1]) > 1e-3, "the adapter changes the answer");
    }

    /// EXAONE 3.5 stores Llama's projections under its own names (transformer.h.N.attn.attention.q_proj ... out_proj,
    /// mlp.c_fc_0 / c_fc_1 / c_proj), and peft names an adapter's tensors after them: such an adapter answers as its
    /// merged checkpoint.
    [Fact]
    public void AnAdapterOfAFamilyWithItsOwnModuleNamesAnswersAsItsMergedCheckpoint()
    {
        using var folder = new TempDirectory();
        Architectures.LlamaVariantsTests.Write(Architectures.LlamaVariantsTests.Family.Exaone, folder.Path);
        using var lora = LoraFixture.Create(folder.Path, projections: ["q_proj", "k_proj", "v_proj", "out_proj", "c_fc_0", "c_fc_1", "c_proj"],
            seed: 7, layers: "transformer.h.");
        using var model = ModelLoader.Load(folder.Path, "float32");
        model.LoadLoraAdapters([new LoraAdapterSource("tuned", lora.Adapter.Path)], maxRank: 16);
        Assert.Equal(4 * model.Config.NumHiddenLayers, model.LoraAdapters[0].NumProjections);   // qkv, o, gate_up, down a layer
        AssertAnswersAsMerged(model, lora);
    }

    [Fact]
    public void DecodingWithAnAdapterFollowsTheMergedModelsGreedyTokens()
    {
        using var lora = LoraFixture.Create("llama-gqa", projections: ["q_proj", "v_proj", "down_proj"], seed: 3);
        using var model = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32");
        model.LoadLoraAdapters([new LoraAdapterSource("tuned", lora.Adapter.Path)], maxRank: 16);
        using var merged = ModelLoader.Load(lora.Merged.Path, "float32");
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 4);
        using var mergedCache = merged.CreateKVCache(numBlocks: 64, blockSize: 4);
        var prompt = Fixtures.Reference("llama-gqa").Prompts[^1].InputIds;
        var runner = new PagedRunner(model, cache);
        var reference = new PagedRunner(merged, mergedCache);
        var mergedTokens = reference.Greedy(reference.Add(prompt), 12, chunkSize: 3);
        Assert.Equal(mergedTokens, runner.Greedy(runner.Add(prompt, adapter: 0), 12, chunkSize: 3));
        Assert.Equal(Fixtures.Reference("llama-gqa").Prompts[^1].Greedy16.Take(12), runner.Greedy(runner.Add(prompt), 12));
    }

    [Theory]
    [InlineData("""{"r": 32, "lora_alpha": 16}""", null, "rank r=32 is above --max-lora-rank 16")]
    [InlineData("""{"r": 4, "use_dora": true}""", null, "DoRA adapters (use_dora) are not supported")]
    [InlineData("""{"r": 4, "modules_to_save": ["lm_head"]}""", null, "modules_to_save is not supported")]
    [InlineData("""{"r": 4, "bias": "all"}""", null, "bias 'all' is not supported")]
    [InlineData("""{"r": 4, "lora_alpha": 1e308}""", null, "out of range")]
    [InlineData("""{"r": "4"}""", null, "LoRA adapter 'bad'")]
    [InlineData("""[4]""", null, "LoRA adapter 'bad'")]
    [InlineData("""{"r": 4,""", null, "LoRA adapter 'bad'")]
    [InlineData("""{"r": 4}""", "base_model.model.lm_head.lora_A.weight", "tensor 'base_model.model.lm_head.lora_A.weight' is not a lora_A / lora_B weight")]
    [InlineData("""{"r": 4}""", "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight:8x3", "lora_A is [8, 3] and lora_B [64, 4]")]
    [InlineData("""{"r": 4}""", "base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight", "tensor 'base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight' is not a lora_A / lora_B weight of an attention or MLP projection of this model")]
    public void AdaptersTheEngineCannotApplyAreRefusedSayingWhy(string config, string? extraTensor, string message)
        => AssertRefused(config, extraTensor, message, nanWeights: false);

    [Fact]
    public void AnAdapterOfNaNWeightsIsRefused() =>
        AssertRefused("""{"r": 4, "lora_alpha": 8}""", null, "not finite", nanWeights: true);

    static void AssertRefused(string config, string? extraTensor, string message, bool nanWeights)
    {
        using var lora = LoraFixture.Create("llama-gqa", projections: ["q_proj"]);
        File.WriteAllText(lora.Adapter.File(LoraLoader.ConfigFile), config);
        if (extraTensor is not null || nanWeights)
        {
            var tensors = new Dictionary<string, TorchSharp.torch.Tensor>();
            using (var file = Serving.Engine.Weights.SafetensorsFile.Open(lora.Adapter.File(LoraLoader.WeightsFile)))
                foreach (var name in file.Tensors.Keys) tensors[name] = nanWeights ? file.Read(name) * float.NaN : file.Read(name);
            if (extraTensor is not null)
            {
                var (name2, shape) = extraTensor.Split(':') is [var n, var s] ? (n, s.Split('x').Select(long.Parse).ToArray()) : (extraTensor, new long[] { 4, 4 });
                tensors[name2] = TorchSharp.torch.zeros(shape);
            }
            Serving.Engine.Weights.SafetensorsWriter.Write(lora.Adapter.File(LoraLoader.WeightsFile), tensors);
        }
        using var model = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32");
        var error = Assert.Throws<ModelLoadException>(() => model.LoadLoraAdapters([new LoraAdapterSource("bad", lora.Adapter.Path)], maxRank: 16));
        Assert.Contains("LoRA adapter 'bad'", error.Message);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void TheRoomLeftPerAdapterIsWhatAnAdapterOfThatRankTakes()
    {
        using var model = ModelLoader.Load(Fixtures.Dir("qwen3-gqa"), "float32");
        using var adapter = LoraLoader.Random("r", model.Config, rank: 8, model.Dtype, model.Device, seed: 1);
        var bytes = Enumerable.Range(0, model.Config.NumHiddenLayers)
            .SelectMany(layer => Enum.GetValues<LoraProjection>().Select(p => adapter.For(new LoraTarget(layer, p))!))
            .Sum(w => (w.A.NumberOfElements + w.B.NumberOfElements) * w.A.ElementSize);
        Assert.Equal(bytes, LoraLoader.DeviceBytes(model.Config, 8, model.Dtype));
    }

    [Fact]
    public void AtMostMaxLorasAreServed()
    {
        using var lora = LoraFixture.Create("llama-gqa", projections: ["q_proj"]);
        using var model = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32");
        var sources = new[] { new LoraAdapterSource("a", lora.Adapter.Path), new LoraAdapterSource("b", lora.Adapter.Path) };
        Assert.Contains("--max-loras is 1", Assert.Throws<ModelLoadException>(() => model.LoadLoraAdapters(sources, 16, capacity: 1)).Message);
        model.LoadLoraAdapters(sources, 16, capacity: 2);
        using var third = LoraLoader.Random("c", model.Config, 4, model.Dtype, model.Device, seed: 2);
        Assert.Contains("(--max-loras)", Assert.Throws<InvalidOperationException>(() => model.AddLoraAdapter(third)).Message);
    }

    [Fact]
    public void TensorParallelismRefusesAdapters()
    {
        using var lora = LoraFixture.Create("llama-gqa", projections: ["q_proj"]);
        using var model = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32", tensorParallelSize: 2);
        var error = Assert.Throws<ModelLoadException>(() => model.LoadLoraAdapters([new LoraAdapterSource("a", lora.Adapter.Path)], maxRank: 16));
        Assert.Contains("--tensor-parallel-size", error.Message);
    }

    [Fact]
    public void AnAdaptersBlocksHashApartFromTheBaseModels()
    {
        int[] tokens = [5, 6, 7, 8, 9, 10, 11, 12];
        var (plain, again, salted, other) = (new BlockTable(), new BlockTable(), new BlockTable("lora:a"), new BlockTable("lora:b"));
        foreach (var table in new[] { plain, again, salted, other }) table.HashTokenBlocks(tokens, 2, 4);
        Assert.Equal(plain.TokenBlockHashes, again.TokenBlockHashes);
        Assert.Empty(plain.TokenBlockHashes.Intersect(salted.TokenBlockHashes));
        Assert.Empty(salted.TokenBlockHashes.Intersect(other.TokenBlockHashes));
    }
}
