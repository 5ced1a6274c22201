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
/// (Llama's with biases on q, k, v by default and on o by attention_out_bias) and Mistral with a sliding_window (every layer slides; the context is not bound by it). Every position's logits over the paged pool in chunks; greedy tokens through the
/// engine; the config writer writes back what the reader reads.
public sealed class LlamaVariantsTests
{
    public enum Family { Granite, SmolLM3, Olmo2, Glm4, Cohere, Cohere2, Mistral, CommandRPlus, Olmo3, Exaone4, SeedOss }

    /// Cohere2's sliding window, shorter than the prompts: its layers 0-2 slide, layer 3 is full and has no rope.
    const int Cohere2Window = 3;
    /// OLMo 3's, likewise: its layers 0-2 slide and turn by the plain rotary embedding, layer 3 turns by the scaled one.
    const int Olmo3Window = 3;
    const double Olmo3RopeFactor = 4.0;
    /// EXAONE 4.0's, likewise: layers 0-2 slide with rope, layer 3 is full without it.
    const int Exaone4Window = 3;
    /// Mistral's (7B v0.1's sliding_window, small): every layer slides, windows crossing the chunks and the pool's blocks.
    const int MistralWindow = 4;

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
            Model = folder.Path, BlockSize = 4, NumGpuBlocksOverride = 4, MaxNumBatchedTokens = 8, EnablePrefixCaching = false,
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
            Model = folder.Path, Runner = Serving.Engine.Pooling.RunnerType.Generate,
        }));
        Assert.Contains("is_causal", refused.Message);
        async Task<float[]> EmbedAsync(int maxNumBatchedTokens)
        {
            await using var engine = await Execution.EngineTestHelpers.StartAsync("llama-gqa", o => o with
            {
                Model = folder.Path, BlockSize = 4, MaxNumBatchedTokens = maxNumBatchedTokens,
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
        Assert.False(config.StepWaitsForTheHost);
        Assert.Equal(family is Family.Mistral or Family.SeedOss, config.IsLlamaBlock);   // training takes a window in every layer, and biases
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

        // an OLMo 2 checkpoint is not GQA-converted: its k_norm spans the whole K projection
        Write(Family.Olmo2, folder.Path);
        using var target = new TempDirectory();
        Assert.Throws<ArgumentException>(() => Serving.Engine.Conversion.GqaConversion.ConvertCheckpoint(folder.Path, target.Path, 1));
    }

    const int Vocab = 512, Hidden = 64, Inter = 96, Layers = 4, Heads = 4, KVHeads = 2, HeadDim = 16;
    const double EmbeddingMultiplier = 3.0, AttentionMultiplier = 0.2, ResidualMultiplier = 0.5, LogitsScaling = 2.5;

    internal static Dictionary<string, Tensor> Write(Family family, string folder)
    {
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(family switch
            {
                Family.Granite => "GraniteForCausalLM", Family.SmolLM3 => "SmolLM3ForCausalLM", Family.Olmo2 => "Olmo2ForCausalLM", Family.Olmo3 => "Olmo3ForCausalLM", Family.Exaone4 => "Exaone4ForCausalLM", Family.SeedOss => "SeedOssForCausalLM",
                Family.Glm4 => "Glm4ForCausalLM", Family.Cohere or Family.CommandRPlus => "CohereForCausalLM", Family.Cohere2 => "Cohere2ForCausalLM",
                _ => "MistralForCausalLM",
            }),
            ["model_type"] = family switch
            {
                Family.Granite => "granite", Family.SmolLM3 => "smollm3", Family.Olmo2 => "olmo2", Family.Olmo3 => "olmo3", Family.Exaone4 => "exaone4", Family.SeedOss => "seed_oss", Family.Glm4 => "glm4",
                Family.Cohere or Family.CommandRPlus => "cohere", Family.Cohere2 => "cohere2", _ => "mistral",
            },
            ["hidden_size"] = Hidden, ["intermediate_size"] = Inter, ["num_hidden_layers"] = Layers, ["num_attention_heads"] = Heads,
            ["num_key_value_heads"] = KVHeads, ["vocab_size"] = Vocab, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 10000.0,
            ["max_position_embeddings"] = 256, ["hidden_act"] = "silu", ["torch_dtype"] = "float32", ["bos_token_id"] = 1, ["eos_token_id"] = 2,
        };
        if (family == Family.Granite)
        {
            config["embedding_multiplier"] = EmbeddingMultiplier;
            config["attention_multiplier"] = AttentionMultiplier;
            config["residual_multiplier"] = ResidualMultiplier;
            config["logits_scaling"] = LogitsScaling;
            config["tie_word_embeddings"] = true;   // as Granite 3's configs say (GraniteConfig's default is false)
        }
        else if (family == Family.SmolLM3)
        {
            config["tie_word_embeddings"] = true;
            config["no_rope_layer_interval"] = 4;   // layer 3 has no rotary embedding
        }
        else if (family == Family.Glm4)
        {
            config["tie_word_embeddings"] = true;
            config["attention_bias"] = true;
            config["partial_rotary_factor"] = 0.5;
        }
        else if (family is Family.Cohere or Family.Cohere2 or Family.CommandRPlus)
        {
            config["logit_scale"] = 0.25;
            config["layer_norm_eps"] = 1e-5;
            if (family == Family.Cohere2) config["sliding_window"] = Cohere2Window;   // layer_types from the pattern: 4
            if (family == Family.CommandRPlus) config["use_qk_norm"] = true;
        }
        else if (family == Family.Mistral)
        {
            config["tie_word_embeddings"] = true;
            config["sliding_window"] = MistralWindow;
        }
        else if (family == Family.SeedOss)
        {
            config["tie_word_embeddings"] = true;
            config["head_dim"] = HeadDim;
            config["attention_out_bias"] = true;   // attention_bias left out: on by default
        }
        else if (family == Family.Exaone4)
        {
            config["tie_word_embeddings"] = true;
            config["sliding_window"] = Exaone4Window;
            config["sliding_window_pattern"] = "LLLG";
        }
        else if (family == Family.Olmo3)
        {
            config["tie_word_embeddings"] = true;
            config["sliding_window"] = Olmo3Window;   // layer_types from the default: every fourth layer full
            config["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = Olmo3RopeFactor };
        }
        else config["tie_word_embeddings"] = true;
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        ReferenceChecks.CopyTokenizer(folder);
        var generator = new Generator(seed: (ulong)family + 21);
        Tensor Random(params long[] dims) => randn(dims, generator: generator) * 0.15f;
        Tensor Norm() => 1 + randn([Hidden], generator: generator) * 0.1f;
        var weights = new Dictionary<string, Tensor> { ["model.embed_tokens.weight"] = Random(Vocab, Hidden), ["model.norm.weight"] = Norm() };
        for (var i = 0; i < Layers; i++)
        {
            var p = $"model.layers.{i}.";
            weights[p + "self_attn.q_proj.weight"] = Random(Heads * HeadDim, Hidden);
            weights[p + "self_attn.k_proj.weight"] = Random(KVHeads * HeadDim, Hidden);
            weights[p + "self_attn.v_proj.weight"] = Random(KVHeads * HeadDim, Hidden);
            weights[p + "self_attn.o_proj.weight"] = Random(Hidden, Heads * HeadDim);
            if (family == Family.SeedOss)
            {
                weights[p + "self_attn.q_proj.bias"] = Random(Heads * HeadDim);
                weights[p + "self_attn.k_proj.bias"] = Random(KVHeads * HeadDim);
                weights[p + "self_attn.v_proj.bias"] = Random(KVHeads * HeadDim);
                weights[p + "self_attn.o_proj.bias"] = Random(Hidden);
            }
            if (family == Family.Glm4)
            {
                weights[p + "mlp.gate_up_proj.weight"] = Random(2 * Inter, Hidden);
                weights[p + "self_attn.q_proj.bias"] = Random(Heads * HeadDim);
                weights[p + "self_attn.k_proj.bias"] = Random(KVHeads * HeadDim);
                weights[p + "self_attn.v_proj.bias"] = Random(KVHeads * HeadDim);
                weights[p + "post_self_attn_layernorm.weight"] = Norm();
                weights[p + "post_mlp_layernorm.weight"] = Norm();
            }
            else
            {
                weights[p + "mlp.gate_proj.weight"] = Random(Inter, Hidden);
                weights[p + "mlp.up_proj.weight"] = Random(Inter, Hidden);
            }
            weights[p + "mlp.down_proj.weight"] = Random(Hidden, Inter);
            if (family is not (Family.Cohere or Family.Cohere2 or Family.CommandRPlus)) weights[p + "post_attention_layernorm.weight"] = Norm();
            if (family == Family.CommandRPlus)
            {
                // a weight per head, far enough apart that one head's weight on another would show
                weights[p + "self_attn.q_norm.weight"] = 1 + randn([Heads, HeadDim], generator: generator) * 0.3f;
                weights[p + "self_attn.k_norm.weight"] = 1 + randn([KVHeads, HeadDim], generator: generator) * 0.3f;
            }
            if (family == Family.Exaone4)
            {
                weights[p + "post_feedforward_layernorm.weight"] = Norm();
                weights[p + "self_attn.q_norm.weight"] = 1 + randn([HeadDim], generator: generator) * 0.1f;
                weights[p + "self_attn.k_norm.weight"] = 1 + randn([HeadDim], generator: generator) * 0.1f;
            }
            else if (family is Family.Olmo2 or Family.Olmo3)
            {
                weights[p + "post_feedforward_layernorm.weight"] = Norm();
                weights[p + "self_attn.q_norm.weight"] = 1 + randn([Heads * HeadDim], generator: generator) * 0.1f;
                weights[p + "self_attn.k_norm.weight"] = 1 + randn([KVHeads * HeadDim], generator: generator) * 0.1f;
            }
            else weights[p + "input_layernorm.weight"] = Norm();
        }
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), weights);
        return weights;
    }

    /// causal false: every position sees the whole prompt (is_causal: false).
    internal static double[][] Reference(Family family, Dictionary<string, Tensor> weights, int[] tokens, bool causal = true)
    {
        using var scope = NewDisposeScope();
        var granite = family == Family.Granite;
        Tensor W(string name) => weights[name].to_type(ScalarType.Float64);
        var cohere = family is Family.Cohere or Family.Cohere2 or Family.CommandRPlus;
        var cohere2Full = (int layer) => family == Family.Cohere2 && layer == 3;   // (layer + 1) % 4 == 0
        var olmo3Full = (int layer) => family == Family.Olmo3 && layer == 3;       // likewise
        Tensor Norm(Tensor x, Tensor w)
        {
            if (!cohere) return x * (x.square().mean([-1], keepdim: true) + 1e-6).rsqrt() * w;
            var centered = x - x.mean([-1], keepdim: true);                    // cohere's LayerNorm, no bias
            return centered * (centered.square().mean([-1], keepdim: true) + 1e-5).rsqrt() * w;
        }
        var t = tokens.Length;
        var h = W("model.embed_tokens.weight").index_select(0, tensor(tokens.Select(x => (long)x).ToArray())) * (granite ? EmbeddingMultiplier : 1.0);
        var rope = ReferenceChecks.HalfRope(t, HeadDim, 10000.0);
        var scaledRope = ReferenceChecks.HalfRope(t, HeadDim, 10000.0, Olmo3RopeFactor);   // linear: positions / factor
        var angles = outer(Serving.Engine.HeldScalars.Range(0, t, dtype: ScalarType.Float64), 1.0 / pow(10000.0, Serving.Engine.HeldScalars.Range(0, HeadDim, 2, ScalarType.Float64) / HeadDim));
        // GLM: the first half of each head in interleaved pairs, frequencies of that half (transformers' rotate_half over
        // x[..., 0::2] and x[..., 1::2], cos and sin repeated per pair)
        const int Turned = HeadDim / 2;
        var pairInverse = 1.0 / pow(10000.0, Serving.Engine.HeldScalars.Range(0, Turned, 2, ScalarType.Float64) / Turned);
        var pairAngles = outer(Serving.Engine.HeldScalars.Range(0, t, dtype: ScalarType.Float64), pairInverse);                    // (t, Turned / 2)
        var (pairCos, pairSin) = (pairAngles.cos().repeat_interleave(2, 1).unsqueeze(1), pairAngles.sin().repeat_interleave(2, 1).unsqueeze(1));
        // cohere: every dimension in interleaved pairs, frequencies of the whole head
        var (allCos, allSin) = (angles.cos().repeat_interleave(2, 1).unsqueeze(1), angles.sin().repeat_interleave(2, 1).unsqueeze(1));
        Tensor RotateAllPairs(Tensor y)
        {
            var pairs = y.reshape(t, y.shape[1], HeadDim / 2, 2);
            var swapped = stack([-pairs.select(-1, 1), pairs.select(-1, 0)], -1).flatten(-2);
            return y * allCos + swapped * allSin;
        }
        Tensor RotatePairs(Tensor y)
        {
            var turned = y.narrow(-1, 0, Turned);
            var pairs = turned.reshape(t, y.shape[1], Turned / 2, 2);
            var swapped = stack([-pairs.select(-1, 1), pairs.select(-1, 0)], -1).flatten(-2);   // rotate_half: (-x1, x0), (-x3, x2), ...
            return cat([turned * pairCos + swapped * pairSin, y.narrow(-1, Turned, HeadDim - Turned)], -1);
        }
        var residual = granite ? ResidualMultiplier : 1.0;
        for (var i = 0; i < Layers; i++)
        {
            var p = $"model.layers.{i}.";
            var olmo = family is Family.Olmo2 or Family.Olmo3 or Family.Exaone4;   // norms on the sublayers' outputs only
            var x = olmo ? h : Norm(h, W(p + "input_layernorm.weight"));
            var glm = family == Family.Glm4;
            var seed = family == Family.SeedOss;
            Tensor Bias(string name) => glm || seed ? W(p + $"self_attn.{name}.bias") : zeros(1, ScalarType.Float64);
            var q = x.matmul(W(p + "self_attn.q_proj.weight").t()) + Bias("q_proj");
            var k = x.matmul(W(p + "self_attn.k_proj.weight").t()) + Bias("k_proj");
            if (olmo && family != Family.Exaone4) (q, k) = (Norm(q, W(p + "self_attn.q_norm.weight")), Norm(k, W(p + "self_attn.k_norm.weight")));
            (q, k) = (q.view(t, Heads, HeadDim), k.view(t, KVHeads, HeadDim));
            if (family == Family.Exaone4) (q, k) = (Norm(q, W(p + "self_attn.q_norm.weight")), Norm(k, W(p + "self_attn.k_norm.weight")));   // each head
            if (family == Family.CommandRPlus) (q, k) = (Norm(q, W(p + "self_attn.q_norm.weight")), Norm(k, W(p + "self_attn.k_norm.weight")));   // (heads, head_dim) weights
            var v = (x.matmul(W(p + "self_attn.v_proj.weight").t()) + Bias("v_proj")).view(t, KVHeads, HeadDim);
            if (glm) (q, k) = (RotatePairs(q), RotatePairs(k));
            else if (cohere) (q, k) = cohere2Full(i) ? (q, k) : (RotateAllPairs(q), RotateAllPairs(k));
            else if (olmo3Full(i)) (q, k) = (ReferenceChecks.RotateHalf(q, scaledRope), ReferenceChecks.RotateHalf(k, scaledRope));
            else if (family is not (Family.SmolLM3 or Family.Exaone4) || i != 3) (q, k) = (ReferenceChecks.RotateHalf(q, rope), ReferenceChecks.RotateHalf(k, rope));   // smollm3: layer 3 has no rope
            int? window = family == Family.Cohere2 && !cohere2Full(i) ? Cohere2Window : family == Family.Mistral ? MistralWindow
                : family == Family.Olmo3 && !olmo3Full(i) ? Olmo3Window : family == Family.Exaone4 && i != 3 ? Exaone4Window : null;
            var mask = !causal ? zeros(t, t, ScalarType.Bool) : ReferenceChecks.CausalMask(t, window);
            var attended = ReferenceChecks.Attend(q, k, v, granite ? AttentionMultiplier : 1 / Math.Sqrt(HeadDim), mask);
            var output = attended.matmul(W(p + "self_attn.o_proj.weight").t()) + (seed ? Bias("o_proj") : zeros(1, ScalarType.Float64));
            if (cohere)
            {
                // the parallel block: attention and MLP of the same normed input, both added at once
                var parallel = (nn.functional.silu(x.matmul(W(p + "mlp.gate_proj.weight").t())) * x.matmul(W(p + "mlp.up_proj.weight").t()))
                    .matmul(W(p + "mlp.down_proj.weight").t());
                h = h + output + parallel;
                continue;
            }
            h = h + (olmo ? Norm(output, W(p + "post_attention_layernorm.weight"))
                : glm ? Norm(output, W(p + "post_self_attn_layernorm.weight")) : output * residual);
            x = olmo ? h : Norm(h, W(p + "post_attention_layernorm.weight"));
            var (gate, up) = glm
                ? (W(p + "mlp.gate_up_proj.weight").narrow(0, 0, Inter), W(p + "mlp.gate_up_proj.weight").narrow(0, Inter, Inter))
                : (W(p + "mlp.gate_proj.weight"), W(p + "mlp.up_proj.weight"));
            var mlp = (nn.functional.silu(x.matmul(gate.t())) * x.matmul(up.t())).matmul(W(p + "mlp.down_proj.weight").t());
            h = h + (olmo ? Norm(mlp, W(p + "post_feedforward_layernorm.weight"))
                : glm ? Norm(mlp, W(p + "post_mlp_layernorm.weight")) : mlp * residual);
        }
        var logits = Norm(h, W("model.norm.weight")).matmul(W("model.embed_tokens.weight").t()) / (granite ? LogitsScaling : 1.0)
            * (cohere ? 0.25 : 1.0);
        return ReferenceChecks.Rows(logits);
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
