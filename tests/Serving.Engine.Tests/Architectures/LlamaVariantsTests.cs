using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Architectures;

/// Llama's layout with a twist, random and tiny, against a float64 forward written here from transformers' code:
/// Granite (embedding, attention and residual multipliers, logits_scaling, tied embeddings), SmolLM3 (no rotary
/// embedding in every fourth layer), OLMo 2 (norms after each sublayer only, q/k norms over the whole projections,
/// norms scaling in float32) and GLM-4 (interleaved rotary pairs over half of each head, q/k/v biases, gate_up_proj
/// stored fused, norms on the sublayers' outputs too), Cohere (a parallel block, LayerNorm about the mean, interleaved
/// rotary pairs, logit_scale), Cohere2 (Cohere's block, sliding layers with a window shorter than the prompts, no
/// rotary embedding in its full layer), Command R+ (Cohere's with use_qk_norm: LayerNorm over each query and key head by
/// a weight per head), OLMo 3 (OLMo 2's block with sliding layers, a linear rope_scaling in its full layer only), EXAONE 4.0 (OLMo 2's
/// block with Llama's norms, q/k norms per head, sliding layers by an "LLLG" pattern, its full layer without rope), Seed-OSS
/// (Llama's with biases on q, k, v by default and on o by attention_out_bias), Hunyuan (Llama's with q/k norms per head after
/// the rotary embedding, whose base dynamic-alpha scaling raises), Apertus (qwen3's q/k norms, an MLP without a gate whose
/// xIELU activation has parameters of its own per layer, beta and eps stored 0-dim), StarCoder2 (LayerNorms with biases, biases
/// on every projection, an MLP without a gate, a window in every layer), Nemotron (LayerNorms whose weight is stored as its offset
/// from 1, ReLU^2 without a gate, half of each head turned) and Mistral with a sliding_window (every layer slides; the context is not bound by it). Every position's logits over the paged pool in chunks; greedy tokens through the
/// engine; the config writer writes back what the reader reads.
public sealed partial class LlamaVariantsTests
{
    public enum Family { Granite, SmolLM3, Olmo2, Glm4, Cohere, Cohere2, Mistral, CommandRPlus, Olmo3, Exaone4, SeedOss, Hunyuan, Apertus, Starcoder2, Nemotron, Arcee, Exaone, Glm }

    public static TheoryData<Family> Families => new(Enum.GetValues<Family>());

    [Theory, MemberData(nameof(Families))]
    public void EveryPositionsLogitsMatchTheReference(Family family)
    {
        using var folder = new TempDirectory();
        var weights = Write(family, folder.Path);
        int[] prompt = [1, 17, 305, 42, 9, 77, 480, 3, 250, 11];
        ReferenceChecks.AssertEveryPositionMatches(folder.Path, prompt, [3, 7], Reference(family, weights, prompt), family.ToString());
    }

    [Theory, MemberData(nameof(Families))]
    public Task GreedyTokensThroughTheEngineAreTheReferences(Family family) =>
        ReferenceChecks.AssertEngineGreedyIsTheReferencesAsync(folder => Write(family, folder), (weights, tokens) => Reference(family, weights, tokens), [1, 17, 305, 42, 9], 10);

    /// A sequence longer than the whole KV pool: every Mistral layer slides, so blocks go back to the pool as they fall
    /// out of the window (KVCacheManager.ReleaseOutsideWindow) and 5 + 40 tokens run in 4 blocks of 4, steps of at most
    /// 8 tokens, giving the reference's tokens; the admission check counts the blocks held at once, not the sequence's.
    [Fact]
    public async Task AWindowedSequenceOutrunsTheKVPool()
    {
        using var folder = new TempDirectory();
        var weights = Write(Family.Mistral, folder.Path);
        int[] prompt = [1, 17, 305, 42, 9];
        var expected = ReferenceChecks.Greedy(tokens => Reference(Family.Mistral, weights, tokens), prompt, 40);
        await using var engine = await Execution.EngineTestHelpers.StartAsync("llama-gqa", o => o with
        {
            Model = folder.Path,
            BlockSize = 4,
            NumGpuBlocksOverride = 4,
            MaxNumBatchedTokens = 8,
            EnablePrefixCaching = false,
        });
        var completion = await Execution.EngineTestHelpers.CollectAsync(engine, Execution.EngineTestHelpers.Greedy(prompt, 40));
        Assert.Equal(expected, completion.Tokens());
    }

    /// is_causal: false (gte-Qwen2's bidirectional embeddings), here on Granite's checkpoint: every position's logits,
    /// the prompt in one step, are the float64 forward's where each position sees the whole prompt; the engine takes the
    /// pooling runner (generation is refused), computes each prompt whole whatever --max-num-batched-tokens says, and
    /// keeps no prefix cache.
    [Fact]
    public async Task ABidirectionalCheckpointSeesTheWholePrompt()
    {
        using var folder = new TempDirectory();
        var weights = Write(Family.Granite, folder.Path);
        var path = Path.Combine(folder.Path, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config["is_causal"] = false;
        File.WriteAllText(path, config.ToJsonString());
        int[] prompt = [1, 17, 305, 42, 9, 77, 480, 3, 250, 11];
        ReferenceChecks.AssertEveryPositionMatches(folder.Path, prompt, [prompt.Length], Reference(Family.Granite, weights, prompt, causal: false), "bidirectional");
        ReferenceChecks.AssertConfigRoundTrips(folder.Path);
        Assert.False(ModelConfig.Load(folder.Path).IsCausal);

        var refused = await Assert.ThrowsAsync<ModelLoadException>(() => Execution.EngineTestHelpers.StartAsync("llama-gqa", o => o with
        {
            Model = folder.Path,
            Runner = Serving.Engine.Pooling.RunnerType.Generate,
        }));
        Assert.Contains("is_causal", refused.Message);
        async Task<float[]> EmbedAsync(int maxNumBatchedTokens)
        {
            await using var engine = await Execution.EngineTestHelpers.StartAsync("llama-gqa", o => o with
            {
                Model = folder.Path,
                BlockSize = 4,
                MaxNumBatchedTokens = maxNumBatchedTokens,
            });
            Assert.Equal(Serving.Engine.Pooling.RunnerType.Pooling, engine.Info.Runner);
            GenerationRequest Request() => new()
            {
                RequestId = Guid.NewGuid().ToString("N"), PromptTokenIds = prompt,
                Pooling = new Serving.Engine.Pooling.PoolingParams(Serving.Engine.Pooling.PoolingType.Last, false),
            };
            // LAST pooling may start from a cached prefix where prefix caching is on: here nothing is looked up
            var embedding = (await engine.EmbedAsync(Request(), default)).Embedding;
            Assert.Equal(embedding, (await engine.EmbedAsync(Request(), default)).Embedding);
            Assert.Equal(0, engine.GetStats().PrefixCacheQueries);
            return embedding;
        }
        // the earlier positions' states see the later ones: a chunked prompt (steps of 3) would give another embedding
        var whole = await EmbedAsync(8192);
        Assert.Equal(whole, await EmbedAsync(3));
        // several at once under a budget of 16 (the model's length here): none is split over the budget another left
        await using (var engine = await Execution.EngineTestHelpers.StartAsync("llama-gqa", o => o with { Model = folder.Path, BlockSize = 4, MaxModelLen = 16 }))
        {
            var embeddings = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => engine.EmbedAsync(new GenerationRequest
            {
                RequestId = Guid.NewGuid().ToString("N"), PromptTokenIds = prompt,
                Pooling = new Serving.Engine.Pooling.PoolingParams(Serving.Engine.Pooling.PoolingType.Last, false),
            }, default)));
            Assert.All(embeddings, e => Assert.Equal(whole, e.Embedding, (a, b) => Math.Abs(a - b) < 1e-5f));
        }
    }

    [Theory, MemberData(nameof(Families))]
    public void TheConfigWriterWritesWhatTheReaderReadsBack(Family family)
    {
        using var folder = new TempDirectory();
        Write(family, folder.Path);
        ReferenceChecks.AssertConfigRoundTrips(folder.Path);
        if (family is Family.Olmo2 or Family.Olmo3)
            Assert.Contains("one device", Assert.Throws<ModelLoadException>(() => ModelLoader.Load(folder.Path, "float32", tensorParallelSize: 2)).Message);
        if (family == Family.CommandRPlus)
        {
            Assert.Equal(QkNorm.EachHeadOwnWeight, ModelConfig.Load(folder.Path).QkNorm);
            // a K head's own norm weight has no pooled counterpart
            using var target = new TempDirectory();
            Assert.Contains("EachHeadOwnWeight", Assert.Throws<ArgumentException>(() =>
                Serving.Engine.Conversion.GqaConversion.ConvertCheckpoint(folder.Path, target.Path, 1)).Message);
        }
    }

    /// Every variant is within what the fused kernels compute (granite's multipliers, smollm3's layers without rope,
    /// olmo2's norms weighed before rounding, glm4's and cohere's interleaved pairs, cohere's LayerNorm, mistral's
    /// window); of them only Mistral and Seed-OSS are the training backend's Llama block.
    [Theory, MemberData(nameof(Families))]
    public void TheFusedKernelsComputeEveryVariant(Family family)
    {
        var config = ReferenceChecks.ConfigOf(folder => Write(family, folder));
        Assert.True(config.FusedKernelsCompute);
        Assert.Equal(family is Family.Mistral or Family.SeedOss or Family.Exaone, config.IsLlamaBlock);   // training takes a window in every layer, and biases
        if (family == Family.Granite) Assert.Equal(AttentionMultiplier, config.SoftmaxScale);
        else Assert.Equal(1 / Math.Sqrt(HeadDim), config.SoftmaxScale, 12);
    }

    [Fact]
    public void AbsentFieldsTakeTransformersDefaults()
    {
        using var folder = new TempDirectory();
        void Config(string json) => File.WriteAllText(Path.Combine(folder.Path, "config.json"), json);
        const string Shape = """ "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4, "vocab_size": 512 """;
        Config($$"""{"architectures": ["GraniteForCausalLM"], "model_type": "granite", {{Shape}} }""");
        Assert.False(ModelConfig.Load(folder.Path).TieWordEmbeddings);   // GraniteConfig's default
        Config($$"""{"architectures": ["SmolLM3ForCausalLM"], "model_type": "smollm3", "no_rope_layers": [1, 1, 1, 0, 1, 1, 1, 0], {{Shape}} }""");
        var smol = ModelConfig.Load(folder.Path);
        Assert.True(smol.TieWordEmbeddings);
        Assert.Equal(2000000.0, smol.Rope.Theta);
        Assert.Equal([3], smol.NoRopeLayers);                             // the first num_hidden_layers entries

        // EXAONE 4.0: a window of 4096 in three layers of four unless the config says otherwise; the full layers without
        // rope then; "sliding_window": null (the 1.2B) is no window at all, every layer turning by rope
        const string Exaone = """ "architectures": ["Exaone4ForCausalLM"], "model_type": "exaone4" """;
        Config($$"""{ {{Exaone}}, {{Shape}} }""");
        var hybrid = ModelConfig.Load(folder.Path);
        Assert.Equal([4096, 4096, 4096, null], hybrid.LayerWindows);
        Assert.Equal([3], hybrid.NoRopeLayers);
        Config($$"""{ {{Exaone}}, "sliding_window": null, {{Shape}} }""");
        var global = ModelConfig.Load(folder.Path);
        Assert.All(global.LayerWindows, window => Assert.Null(window));
        Assert.Empty(global.NoRopeLayers);
        ReferenceChecks.AssertConfigRoundTrips(folder.Path);
        Config($$"""{ {{Exaone}}, "sliding_window": 8, "sliding_window_pattern": "LG", {{Shape}} }""");
        Assert.Equal([8, null, 8, null], ModelConfig.Load(folder.Path).LayerWindows);   // the last layer full whatever the pattern says
        Config($$"""{ {{Exaone}}, "sliding_window": 8, "sliding_window_pattern": "LLX", {{Shape}} }""");
        Assert.Contains("sliding_window_pattern", Assert.Throws<ModelConfigException>(() => ModelConfig.Load(folder.Path)).Message);

        // Hunyuan: transformers' norm epsilon; cross-layer attention and a dynamic rope without alpha are refused
        const string Hunyuan = """ "architectures": ["HunYuanDenseV1ForCausalLM"], "model_type": "hunyuan_v1_dense" """;
        Config($$"""{ {{Hunyuan}}, {{Shape}} }""");
        Assert.Equal(1e-5, ModelConfig.Load(folder.Path).RmsNormEps);
        Config($$"""{ {{Hunyuan}}, "use_cla": true, {{Shape}} }""");
        Assert.Contains("use_cla", Assert.Throws<ModelConfigException>(() => ModelConfig.Load(folder.Path)).Message);
        Config($$"""{ {{Hunyuan}}, "rope_scaling": {"type": "dynamic", "factor": 2.0}, {{Shape}} }""");
        Assert.Contains("dynamic with alpha", Assert.Throws<ModelConfigException>(() => ModelConfig.Load(folder.Path)).Message);

        // Apertus: xIELU, and ApertusConfig's llama3 rope where the config gives none
        Config($$"""{"architectures": ["ApertusForCausalLM"], "model_type": "apertus", {{Shape}} }""");
        var apertus = ModelConfig.Load(folder.Path);
        Assert.Equal((MlpActivation.Xielu, false), (apertus.Activation, apertus.GatedMlp));
        Assert.Equal(new RopeConfig { Theta = 12000000.0, Type = RopeType.Llama3, Factor = 8, OriginalMaxPositionEmbeddings = 8192 }, apertus.Rope);
        Assert.Equal(65536, apertus.MaxPositionEmbeddings);
        ReferenceChecks.AssertConfigRoundTrips(folder.Path);

        // an OLMo 2 checkpoint is not GQA-converted: its k_norm spans the whole K projection
        Write(Family.Olmo2, folder.Path);
        using var target = new TempDirectory();
        Assert.Throws<ArgumentException>(() => Serving.Engine.Conversion.GqaConversion.ConvertCheckpoint(folder.Path, target.Path, 1));
    }
}

/// The same checkpoints on CUDA: greedy tokens as the float64 reference gives them (on the fused backend with CUDA
/// graphs), and the fused backend's logits against the plain one's.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class LlamaVariantsGpuTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [GpuTheory, MemberData(nameof(LlamaVariantsTests.Families), MemberType = typeof(LlamaVariantsTests))]
    public void TheFusedBackendComputesThemAsThePlainOne(LlamaVariantsTests.Family family) =>
        ReferenceChecks.AssertFusedAgreesWithPlain(folder => LlamaVariantsTests.Write(family, folder), output.WriteLine);

    [GpuTheory, MemberData(nameof(LlamaVariantsTests.Families), MemberType = typeof(LlamaVariantsTests))]
    public Task OnCudaTheyAnswerAsTheReference(LlamaVariantsTests.Family family) =>
        ReferenceChecks.AssertEngineGreedyIsTheReferencesAsync(folder => LlamaVariantsTests.Write(family, folder), (weights, tokens) => LlamaVariantsTests.Reference(family, weights, tokens), [1, 17, 305, 42, 9], 10, device: "cuda");
}
