using Serving.Engine.Cuda;
using Serving.Engine.Config;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// Preset shapes and the random-weight models built from them.
public sealed class ModelPresetsTests
{
    [Fact]
    public void Llama3TrioDiffersOnlyInKVHeads()
    {
        var gqa = ModelPresets.Get("llama3-8b");
        Assert.Equal((32, 4096, 14336, 32, 8, 128, 128256), (gqa.NumHiddenLayers, gqa.HiddenSize, gqa.IntermediateSize,
            gqa.NumAttentionHeads, gqa.NumKeyValueHeads, gqa.HeadDim, gqa.VocabSize));
        Assert.Equal(500000, gqa.Rope.Theta);
        // lists compare by reference in records: take them from the GQA config
        ModelConfig Twin(string name, int kvHeads) => ModelPresets.Get(name) with { Architectures = gqa.Architectures, EosTokenIds = gqa.EosTokenIds, NumKeyValueHeads = kvHeads };
        Assert.Equal(32, ModelPresets.Get("llama3-8b-mha").NumKeyValueHeads);
        Assert.Equal(1, ModelPresets.Get("LLAMA3-8B-MQA").NumKeyValueHeads);
        Assert.Equal(gqa, Twin("llama3-8b-mha", 8));
        Assert.Equal(gqa, Twin("llama3-8b-mqa", 8));
    }

    [Fact]
    public void Llama3_70BIsTheShapeOfMetasConfig()
    {
        var config = ModelPresets.Get("llama3-70b");
        Assert.Equal((80, 8192, 28672, 64, 8, 128, 128256), (config.NumHiddenLayers, config.HiddenSize, config.IntermediateSize,
            config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, config.VocabSize));
        Assert.Equal(ModelPresets.Get("llama3-8b").Rope, config.Rope);
        // 2 (K, V) x 80 layers x 8 KV heads x 128 x 2 bytes
        Assert.Equal(327680, KVCacheSpec.For(config, ScalarType.BFloat16).BytesPerToken);
    }

    /// The gemma3-4b preset is read as Gemma 3 4B's text config would be: the gemma block, its windows and two ropes,
    /// on the fused backend's kernels.
    [Fact]
    public void Gemma3_4BIsTheShapeOfGooglesTextConfig()
    {
        var config = ModelPresets.Get("gemma3-4b");
        Assert.Equal(("Gemma3ForCausalLM", 34, 2560, 10240, 8, 4, 256, 262208), (config.Architecture, config.NumHiddenLayers, config.HiddenSize,
            config.IntermediateSize, config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, config.VocabSize));
        Assert.Equal((RmsNormWeight.OffsetBeforeRounding, MlpActivation.GeluTanh, true), (config.NormWeight, config.Activation, config.SandwichNorms));
        Assert.Equal([1024, 1024, 1024, 1024, 1024, null], config.LayerWindows.Take(6));
        Assert.Equal((1000000.0, RopeType.Linear, 8.0, 10000.0), (config.Rope.Theta, config.Rope.Type, config.Rope.Factor, config.LocalRope!.Theta));
        Assert.True(config.FusedKernelsCompute);
        // 2 (K, V) x 34 layers x 4 KV heads x 256 x 2 bytes
        Assert.Equal(139264, KVCacheSpec.For(config, ScalarType.BFloat16).BytesPerToken);
    }

    /// The gemma2-9b preset is read as Gemma 2 9B's config would be: every other layer sliding, both soft-caps, on the
    /// fused backend's kernels (which soft-cap the attention).
    [Fact]
    public void Gemma2_9BIsTheShapeOfGooglesConfig()
    {
        var config = ModelPresets.Get("gemma2-9b");
        Assert.Equal(("Gemma2ForCausalLM", 42, 3584, 14336, 16, 8, 256, 256000), (config.Architecture, config.NumHiddenLayers, config.HiddenSize,
            config.IntermediateSize, config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, config.VocabSize));
        Assert.Equal([4096, null, 4096, null], config.LayerWindows.Take(4));
        Assert.Equal((50.0, 30.0, 1 / 16.0), (config.AttentionSoftcap, config.FinalLogitSoftcap, config.SoftmaxScale));
        Assert.True(config.FusedKernelsCompute);
        // 2 (K, V) x 42 layers x 8 KV heads x 256 x 2 bytes
        Assert.Equal(344064, KVCacheSpec.For(config, ScalarType.BFloat16).BytesPerToken);
    }

    /// The qwen3-30b-a3b preset is read as Qwen3-30B-A3B's config would be: every layer 128 experts of 768, 8 a token,
    /// normalized, q/k norms on each head, on the fused backend's kernels.
    [Fact]
    public void Qwen3_30B_A3BIsTheShapeOfQwensConfig()
    {
        var config = ModelPresets.Get("qwen3-30b-a3b");
        Assert.Equal(("Qwen3MoeForCausalLM", 48, 2048, 32, 4, 128, 151936), (config.Architecture, config.NumHiddenLayers, config.HiddenSize,
            config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, config.VocabSize));
        Assert.Equal((128, 8, 768, true), (config.NumExperts, config.NumExpertsPerToken, config.ExpertIntermediateSize, config.NormalizeTopKProbabilities));
        Assert.True(Enumerable.Range(0, 48).All(config.IsExpertLayer));
        Assert.True(config.FusedKernelsCompute);
        // its experts' products (gate and up 2 x 768 x 2048, down 2048 x 768) are expert_linear.cu's: decode steps graph
        Assert.True(FusedKernels.TakesExperts(ScalarType.BFloat16, 2 * 768, 2048) && FusedKernels.TakesExperts(ScalarType.BFloat16, 2048, 768));
        // 2 (K, V) x 48 layers x 4 KV heads x 128 x 2 bytes
        Assert.Equal(98304, KVCacheSpec.For(config, ScalarType.BFloat16).BytesPerToken);
    }

    /// The gpt-oss-20b preset is read as gpt-oss-20b's config would be: 24 layers, every other sliding over 128 from the
    /// first, 32 experts of 2880 (4 a token) whose products the fused kernels take, so that its decode steps graph.
    [Fact]
    public void GptOss20BIsTheShapeOfOpenAIsConfig()
    {
        var config = ModelPresets.Get("gpt-oss-20b");
        Assert.Equal(("GptOssForCausalLM", 24, 2880, 64, 8, 64, 201088), (config.Architecture, config.NumHiddenLayers, config.HiddenSize,
            config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, config.VocabSize));
        Assert.Equal((32, 4, 2880, 7.0), (config.NumExperts, config.NumExpertsPerToken, config.ExpertIntermediateSize, config.ExpertSwigluLimit));
        Assert.Equal([128, null, 128, null], config.LayerWindows.Take(4));
        Assert.True(config.AttentionSinks && config.QkvBias && config.OutputBias);
        Assert.Equal((RopeType.Yarn, 32.0, 4096), (config.Rope.Type, config.Rope.Factor, config.Rope.OriginalMaxPositionEmbeddings));
        Assert.True(config.FusedKernelsCompute);
        Assert.True(FusedKernels.TakesExperts(ScalarType.BFloat16, 2 * 2880, 2880) && FusedKernels.TakesExperts(ScalarType.BFloat16, 2880, 2880));
        // 2 (K, V) x 24 layers x 8 KV heads x 64 x 2 bytes
        Assert.Equal(49152, KVCacheSpec.For(config, ScalarType.BFloat16).BytesPerToken);
    }

    /// Every rank draws the whole model's random values in the whole model's order and keeps its shard: a preset split
    /// over ranks is the same model as whole.
    [Theory]
    [InlineData("tiny-gqa", 2)]
    [InlineData("tiny-gqa", 4)]
    [InlineData("tiny-mha", 4)]
    public void APresetSplitOverRanksIsTheSameModel(string preset, int size)
    {
        using var whole = ModelLoader.LoadPreset(preset, "float32", seed: 3);
        using var sharded = ModelLoader.LoadPreset(preset, "float32", seed: 3, tensorParallelSize: size);
        using var wholeCache = whole.CreateKVCache(4, 16);
        using var shardedCache = sharded.CreateKVCache(4, 16);
        var inputs = StepInputs.Build([new StepSequence([5, 6, 7, 8, 9], 0, 5, [1])], 16);
        using var scope = NewDisposeScope();
        var error = (whole.Forward(inputs, wholeCache) - sharded.Forward(inputs, shardedCache)).abs().max().item<float>();
        Assert.True(error <= 1e-5, $"max error {error}");
    }

    [Fact]
    public void KVBytesPerTokenShrinkByTheGroupSize()
    {
        // 2 (K, V) x 32 layers x 8 KV heads x 128 x 2 bytes
        Assert.Equal(131072, KVCacheSpec.For(ModelPresets.Get("llama3-8b"), ScalarType.BFloat16).BytesPerToken);
        Assert.Equal(4 * 131072, KVCacheSpec.For(ModelPresets.Get("llama3-8b-mha"), ScalarType.BFloat16).BytesPerToken);
    }

    [Fact]
    public void UnknownPresetNamesTheKnownOnes()
    {
        var error = Assert.Throws<ArgumentException>(() => ModelPresets.Get("llama9"));
        Assert.Contains("llama3-8b-mqa", error.Message);
    }

    [Fact]
    public void LoadAcceptsAPresetNameAndBuildsARunnableRandomModel()
    {
        using var model = ModelLoader.Load("tiny-gqa", "float32");
        Assert.False(model.FusedKernelsActive());  // CPU: the plain TorchSharp path
        using var cache = model.CreateKVCache(numBlocks: 8, blockSize: 16);
        var inputs = StepInputs.Build([new StepSequence([1, 2, 3], 0, 3, [0])], 16);
        using var scope = NewDisposeScope();
        var logits = model.Forward(inputs, cache);
        Assert.Equal(new long[] { 1, model.Config.VocabSize }, logits.shape);
        Assert.True(logits.isfinite().all().item<bool>());
        Assert.True(logits.std().item<float>() > 0.1f, "random weights give spread logits, not a constant");
    }

    [Fact]
    public void SameSeedGivesTheSameWeights()
    {
        using var a = ModelLoader.LoadPreset("tiny-mha", "float32", seed: 7);
        using var b = ModelLoader.LoadPreset("tiny-mha", "float32", seed: 7);
        using var cacheA = a.CreateKVCache(4, 16);
        using var cacheB = b.CreateKVCache(4, 16);
        var inputs = StepInputs.Build([new StepSequence([5, 6], 0, 2, [0])], 16);
        using var scope = NewDisposeScope();
        Assert.True(a.Forward(inputs, cacheA).equal(b.Forward(inputs, cacheB)).all().item<bool>());
    }
}
