using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Config;

public sealed class ModelConfigTests
{
    /// A minimal valid llama config.json, with fields overridden or removed (null) per test.
    static ModelConfig Read(params (string Field, JsonNode? Value)[] overrides)
    {
        var json = new JsonObject
        {
            ["model_type"] = "llama", ["hidden_size"] = 64, ["intermediate_size"] = 176, ["num_hidden_layers"] = 2,
            ["num_attention_heads"] = 8, ["num_key_value_heads"] = 2, ["vocab_size"] = 512, ["eos_token_id"] = 2,
        };
        foreach (var (field, value) in overrides)
            if (value is null) json.Remove(field); else json[field] = value;
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), json.ToJsonString());
        return ModelConfig.Load(dir.Path);
    }

    static ModelConfigException Refused(params (string Field, JsonNode? Value)[] overrides) =>
        Assert.Throws<ModelConfigException>(() => Read(overrides));

    [Fact]
    public void ReadsTheTransformers5Spelling()
    {
        var config = ModelConfig.Load(Fixtures.Dir("llama-gqa"));
        Assert.Equal(("llama", 64, 8, 2, 8, 4), (config.ModelType, config.HiddenSize, config.NumAttentionHeads,
            config.NumKeyValueHeads, config.HeadDim, config.NumQueriesPerKV));
        Assert.Equal(new RopeConfig { Theta = 10000 }, config.Rope);
        Assert.Equal("float32", config.Dtype);
        Assert.Null(config.BosTokenId);
        Assert.Equal([2], config.EosTokenIds);
        Assert.Equal(256, config.MaxContextLength);
        Assert.False(config.QkvBias || config.OutputBias || config.MlpBias || config.TieWordEmbeddings);
    }

    [Fact]
    public void ReadsTheClassicSpelling()
    {
        var config = ModelConfig.Load(Fixtures.Dir("llama-mha"));
        Assert.Equal(8, config.NumKeyValueHeads);
        Assert.Equal(1, config.NumQueriesPerKV);
        Assert.Equal(10000, config.Rope.Theta);
        Assert.Equal("float32", config.Dtype);
        Assert.Equal(1, ModelConfig.Load(Fixtures.Dir("llama-sp-mqa")).NumKeyValueHeads);
        Assert.Equal(1, ModelConfig.Load(Fixtures.Dir("llama-sp-mqa")).BosTokenId);
    }

    [Fact]
    public void AbsentKeyValueHeadsMeanMhaAndAbsentHeadDimIsHiddenOverHeads()
    {
        var config = Read(("num_key_value_heads", null), ("head_dim", null), ("hidden_size", 96));
        Assert.Equal(8, config.NumKeyValueHeads);
        Assert.Equal(12, config.HeadDim);
        Assert.Equal(16, Read(("head_dim", 16)).HeadDim);
    }

    [Fact]
    public void EosTokenIdMayBeAList()
    {
        Assert.Equal([128001, 128008, 128009], Read(("eos_token_id", new JsonArray(128001, 128008, 128009))).EosTokenIds);
        Assert.Empty(Read(("eos_token_id", null)).EosTokenIds);
    }

    [Fact]
    public void RopeThetaAndScalingInBothSpellingsGiveTheSameRope()
    {
        var classic = Read(("rope_theta", 500000.0), ("rope_scaling", new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
            ["original_max_position_embeddings"] = 8192,
        }));
        var parameters = Read(("rope_parameters", new JsonObject
        {
            ["rope_type"] = "llama3", ["rope_theta"] = 500000.0, ["factor"] = 8.0, ["low_freq_factor"] = 1.0,
            ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 8192,
        }));
        Assert.Equal(classic.Rope, parameters.Rope);
        Assert.Equal(RopeType.Llama3, classic.Rope.Type);
        var legacyTypeKey = Read(("rope_scaling", new JsonObject { ["type"] = "linear", ["factor"] = 2.0 }));
        Assert.Equal(new RopeConfig { Type = RopeType.Linear, Factor = 2.0 }, legacyTypeKey.Rope);
    }

    [Fact]
    public void InverseFrequenciesFollowTheRopeType()
    {
        // head dim 8, theta 10^4: frequencies 1, 0.1, 0.01, 0.001
        Assert.Equal([1f, 0.1f, 0.01f, 0.001f], RopeFrequencies.Of(new RopeConfig(), 8), Close);
        Assert.Equal([0.5f, 0.05f, 0.005f, 0.0005f], RopeFrequencies.Of(new RopeConfig { Type = RopeType.Linear, Factor = 2 }, 8), Close);
    }

    [Fact]
    public void FrequenciesAreTransformersFloat32Bits()
    {
        // transformers: 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)), in float32 on the CPU
        using var exponents = Serving.Engine.HeldScalars.Range(0, 128, 2).to_type(TorchSharp.torch.ScalarType.Float32) / 128;
        using var powers = TorchSharp.torch.tensor(500000f).pow(exponents);
        using var expected = powers.reciprocal();
        var frequencies = RopeFrequencies.Of(new RopeConfig { Theta = 500000 }, 128);
        Assert.Equal(expected.data<float>().ToArray(), frequencies);
        // the same values computed in double and rounded differ in the last bit for many of them: the angles of late
        // positions would turn away from transformers'
        Assert.Contains(Enumerable.Range(0, 64), i => (float)(1.0 / Math.Pow(500000, 2.0 * i / 128)) != frequencies[i]);
    }

    [Fact]
    public void Llama3ScalingMatchesAHandComputation()
    {
        var rope = new RopeConfig
        {
            Type = RopeType.Llama3, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 1024,
        };
        // wavelengths 2 pi / f = 6.28, 62.8, 628.3, 6283; high-frequency bound 1024 / 4 = 256, low-frequency bound 1024 / 1.
        // 6.28 and 62.8 < 256: kept. 6283 > 1024: divided by 8 -> 0.000125.
        // 628.3 lies between: smooth = (1024 / 628.3185 - 1) / (4 - 1) = 0.2099203,
        //   (1 - smooth) * 0.01 / 8 + smooth * 0.01 = 0.0009876 + 0.0020992 = 0.0030868
        Assert.Equal([1f, 0.1f, 0.0030868f, 0.000125f], RopeFrequencies.Of(rope, 8), Close);
    }

    [Fact]
    public void YarnScalingMatchesAHandComputation()
    {
        var rope = new RopeConfig { Type = RopeType.Yarn, Factor = 4, OriginalMaxPositionEmbeddings = 64 };
        // head dim 8, theta 10^4: frequencies 1, 0.1, 0.01, 0.001. The band of dimensions where a frequency turns from
        // 32 (beta_fast) down to 1 (beta_slow) times over 64 positions: d(r) = 8 ln(64 / (2 pi r)) / (2 ln 10^4),
        // d(32) = -0.497, d(1) = 1.008; truncated outwards and clamped: [0, 2]. Blend i / 2 of the frequency divided
        // by 4: 1, 0.5 x 0.1 + 0.5 x 0.025 = 0.0625, 0.0025, 0.00025.
        Assert.Equal([1f, 0.0625f, 0.0025f, 0.00025f], RopeFrequencies.Of(rope, 8), Close);
        // untruncated the band is [0, 1.008]: index 1 takes 1 / 1.008 of the divided frequency
        Assert.Equal([1f, 0.0255952f, 0.0025f, 0.00025f], RopeFrequencies.Of((rope with { Truncate = false }), 8), Close);
    }

    [Fact]
    public void TheQwen3LongContextRecipeReadsAsYarnAndServesFourTimesTheOriginalContext()
    {
        // Qwen3's model card: 32,768 tokens natively, 131,072 with this rope_scaling (vLLM: the same block in
        // --hf-overrides, or config.json)
        var scaling = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0, ["original_max_position_embeddings"] = 32768 };
        var config = Read(("model_type", "qwen3"), ("architectures", new JsonArray("Qwen3ForCausalLM")), ("head_dim", 128),
            ("rope_theta", 1000000.0), ("max_position_embeddings", 40960), ("rope_scaling", scaling));
        Assert.Equal(RopeType.Yarn, config.Rope.Type);
        Assert.Equal(0.1 * Math.Log(4) + 1, config.Rope.AttentionScaling, 12);
        Assert.Equal(131072, config.MaxContextLength);
        Assert.Equal(131072, config.ResolveMaxModelLen(0));
        Assert.Contains("yarn rope scaling by 4 serves 131072", Assert.Throws<ModelConfigException>(() => config.ResolveMaxModelLen(131073)).Message);
        // the band for 128 dimensions and theta 10^6 over 32,768 positions is [23, 40]: below it the frequencies are
        // kept, above it divided by 4, between blended (reference values from transformers' formula in float32)
        var frequencies = RopeFrequencies.Of(config.Rope, config.RotaryDim);
        var plain = RopeFrequencies.Of(new RopeConfig { Theta = 1000000 }, 128);
        Assert.Equal(plain[..24], frequencies[..24]);
        Assert.Equal(plain[40..].Select(f => f / 4), frequencies[40..], Close);
        Assert.Equal(0.0010643610f, frequencies[30], Close);
        // transformers 5's spelling gives the same rope
        var parameters = Read(("model_type", "qwen3"), ("architectures", new JsonArray("Qwen3ForCausalLM")), ("head_dim", 128),
            ("max_position_embeddings", 40960), ("rope_parameters", new JsonObject
            {
                ["rope_type"] = "yarn", ["rope_theta"] = 1000000.0, ["factor"] = 4.0, ["original_max_position_embeddings"] = 32768,
            }));
        Assert.Equal(config.Rope, parameters.Rope);
        // the recipe as an override of a transformers 5 config: rope_scaling wins, theta stays rope_parameters'
        var overridden = Read(("model_type", "qwen3"), ("architectures", new JsonArray("Qwen3ForCausalLM")), ("head_dim", 128),
            ("max_position_embeddings", 40960), ("rope_scaling", scaling.DeepClone()),
            ("rope_parameters", new JsonObject { ["rope_type"] = "default", ["rope_theta"] = 1000000.0 }));
        Assert.Equal(config.Rope, overridden.Rope);
        // an empty rope_scaling does not hide rope_parameters
        Assert.Equal(RopeType.Llama3, Read(("rope_scaling", new JsonObject()), ("rope_parameters", new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 8192,
        })).Rope.Type);
    }

    [Fact]
    public void YarnOptionsFollowTransformers()
    {
        // DeepSeek's mscale / mscale_all_dim: the attention factor is the ratio of the two 0.1 m ln(factor) + 1 terms
        var deepSeek = Read(("max_position_embeddings", 163840), ("rope_scaling", new JsonObject
        {
            ["type"] = "yarn", ["factor"] = 40.0, ["original_max_position_embeddings"] = 4096, ["mscale"] = 0.707, ["mscale_all_dim"] = 1.0,
            ["beta_fast"] = 32, ["beta_slow"] = 1,
        }));
        Assert.Equal((0.1 * 0.707 * Math.Log(40) + 1) / (0.1 * Math.Log(40) + 1), deepSeek.Rope.AttentionScaling, 12);
        Assert.Equal(163840, deepSeek.MaxContextLength);
        // an explicit attention_factor wins; truncate false (gpt-oss); no original context: max_position_embeddings is it
        var explicitFactor = Read(("max_position_embeddings", 4096), ("rope_scaling", new JsonObject
        {
            ["rope_type"] = "yarn", ["factor"] = 32.0, ["attention_factor"] = 1.25, ["truncate"] = false,
        }));
        Assert.Equal((1.25, false, 4096, 131072), (explicitFactor.Rope.AttentionScaling, explicitFactor.Rope.Truncate,
            explicitFactor.Rope.OriginalMaxPositionEmbeddings, explicitFactor.MaxContextLength));
        // linear scaling stretches max_position_embeddings by its factor (vLLM's derived length)
        Assert.Equal(4096, Read(("max_position_embeddings", 2048), ("rope_scaling", new JsonObject { ["type"] = "linear", ["factor"] = 2.0 })).MaxContextLength);
        Assert.Contains("'rope_scaling.factor'", Refused(("rope_scaling", new JsonObject { ["rope_type"] = "yarn" })).Message);
    }

    [Fact]
    public void AYarnConfigWrittenOutReadsBackTheSame()
    {
        var config = Read(("max_position_embeddings", 8192), ("rope_scaling", new JsonObject
        {
            ["rope_type"] = "yarn", ["factor"] = 8.0, ["original_max_position_embeddings"] = 2048, ["beta_fast"] = 16.0,
            ["truncate"] = false, ["mscale"] = 0.5, ["mscale_all_dim"] = 1.0,
        }));
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), ModelConfigWriter.ToJson(config).ToJsonString());
        var back = ModelConfig.Load(dir.Path);
        Assert.Equal(config.Rope, back.Rope);
        Assert.Equal(RopeFrequencies.Of(config.Rope, config.RotaryDim), RopeFrequencies.Of(back.Rope, back.RotaryDim));
    }

    static readonly IEqualityComparer<float> Close = EqualityComparer<float>.Create((a, b) => Math.Abs(a - b) <= 1e-6 * Math.Max(1, Math.Abs(b)) + 1e-7);

    [Fact]
    public void Qwen2HasQkvBiasButNoOutputBiasAndIgnoresAnUnusedSlidingWindow()
    {
        var config = Read(("model_type", "qwen2"), ("sliding_window", 4096), ("use_sliding_window", false),
            ("max_position_embeddings", 32768), ("tie_word_embeddings", true));
        Assert.True(config.QkvBias);
        Assert.False(config.OutputBias);
        Assert.True(config.TieWordEmbeddings);
        Assert.Empty(config.LayerWindows);
        Assert.Equal(32768, config.MaxContextLength);
    }

    /// Qwen's use_sliding_window slides the layers from max_window_layers on (transformers' layer_types), unless
    /// layer_types says which; the window is masked, not a bound on the context.
    [Fact]
    public void QwenSlidesTheLayersFromMaxWindowLayersUnderUseSlidingWindow()
    {
        var config = Read(("model_type", "qwen2"), ("sliding_window", 4096), ("use_sliding_window", true), ("max_window_layers", 1),
            ("max_position_embeddings", 32768));
        Assert.Equal(new int?[] { null, 4096 }, config.LayerWindows);   // the fixture shape's two layers
        Assert.Null(config.AttentionSpan);                   // layer 0 sees its whole context
        Assert.Equal(32768, config.MaxContextLength);
        Assert.True(config.FusedKernelsCompute);
        var typed = Read(("model_type", "qwen2"), ("sliding_window", 4096), ("use_sliding_window", true),
            ("layer_types", new JsonArray("sliding_attention", "sliding_attention")));
        Assert.Equal(new int?[] { 4096, 4096 }, typed.LayerWindows);
        Assert.Equal(4096, typed.AttentionSpan);
        Assert.Empty(Read(("model_type", "qwen3"), ("sliding_window", 4096), ("use_sliding_window", false),
            ("layer_types", new JsonArray("sliding_attention", "sliding_attention"))).LayerWindows);
    }

    [Fact]
    public void LlamaAttentionBiasCoversQkvAndOutput()
    {
        var config = Read(("attention_bias", true), ("mlp_bias", true));
        Assert.True(config.QkvBias && config.OutputBias && config.MlpBias);
    }

    [Fact]
    public void MistralsSlidingWindowSlidesEveryLayerAndLeavesTheContextWhole()
    {
        var config = Read(("model_type", "mistral"), ("sliding_window", 4096), ("max_position_embeddings", 32768));
        Assert.Equal(new int?[] { 4096, 4096 }, config.LayerWindows);
        Assert.Equal(4096, config.AttentionSpan);
        Assert.Equal(32768, config.MaxContextLength);
        Assert.Equal(32768, config.ResolveMaxModelLen(0));
        Assert.Contains("max_position_embeddings", Assert.Throws<ModelConfigException>(() => config.ResolveMaxModelLen(40000)).Message);
        var unwindowed = Read(("model_type", "mistral"), ("sliding_window", null), ("max_position_embeddings", 32768));
        Assert.All(unwindowed.LayerWindows, w => Assert.Null(w));
        Assert.Null(unwindowed.AttentionSpan);
        Assert.Equal(2047, Read(("model_type", "phi3"), ("sliding_window", 2047), ("max_position_embeddings", 4096)).AttentionSpan);   // Phi-3-mini-4k
    }

    [Fact]
    public void Qwen3TurnsOnTheHeadNormsAndReadsItsExplicitHeadDim()
    {
        var config = ModelConfig.Load(Fixtures.Dir("qwen3-gqa"));
        Assert.Equal(("Qwen3ForCausalLM", QkNorm.EachHead, 16, 64), (config.Architecture, config.QkNorm, config.HeadDim, config.HiddenSize));
        Assert.Equal(128, config.QSize);
        Assert.Equal(QkNorm.None, Read().QkNorm);
    }

    [Fact]
    public void Phi3ReadsPartialRotaryAndLongRope()
    {
        // a factor per rotary frequency: 8-dimension heads, half of them turned, 2 frequencies
        (string, JsonNode?)[] Phi3(double[] shortFactor, double[] longFactor) =>
        [
            ("architectures", new JsonArray("Phi3ForCausalLM")), ("model_type", "phi3"), ("partial_rotary_factor", 0.5),
            ("max_position_embeddings", 131072), ("original_max_position_embeddings", 4096), ("rope_theta", 10000.0),
            ("rope_scaling", new JsonObject
            {
                ["type"] = "longrope",
                ["short_factor"] = new JsonArray(shortFactor.Select(f => (JsonNode)f).ToArray()),
                ["long_factor"] = new JsonArray(longFactor.Select(f => (JsonNode)f).ToArray()),
            }),
        ];
        var config = Read(Phi3([1.0, 1.5], [4.0, 5.0]));
        Assert.Contains("need 2 factors each", Refused(Phi3([1.0, 1.5, 2.0, 2.5], [4.0, 5.0])).Message);
        Assert.Equal((8, 4), (config.HeadDim, config.RotaryDim));
        Assert.Equal(RopeType.LongRope, config.Rope.Type);
        Assert.Equal(4096, config.Rope.LongContextStart);
        // transformers' default attention factor: sqrt(1 + ln(131072 / 4096) / ln(4096))
        Assert.Equal(Math.Sqrt(1 + Math.Log(32) / Math.Log(4096)), config.Rope.AttentionScaling, 12);
        var shortFrequencies = RopeFrequencies.Of(config.Rope, config.RotaryDim);
        var longFrequencies = RopeFrequencies.Of(config.Rope, config.RotaryDim, longContext: true);
        Assert.Equal(1.0 / (1.5 * Math.Pow(10000, 2.0 / 4)), shortFrequencies[1], 6);
        Assert.Equal(1.0 / (5.0 * Math.Pow(10000, 2.0 / 4)), longFrequencies[1], 6);
        Assert.Contains("'partial_rotary_factor'", Refused(("architectures", new JsonArray("Phi3ForCausalLM")), ("model_type", "phi3"), ("partial_rotary_factor", 0.375)).Message);  // 3 of 8 dimensions
    }

    [Fact]
    public void AnUnsupportedArchitectureListsTheSupportedOnes()
    {
        var message = Refused(("architectures", new JsonArray("GPTNeoXForCausalLM"))).Message;
        Assert.Contains("GPTNeoXForCausalLM", message);
        foreach (var name in new[] { "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Phi3ForCausalLM" })
            Assert.Contains(name, message);
        Assert.Contains("'model_type'", Refused(("architectures", new JsonArray("Qwen3ForCausalLM")), ("model_type", "llama")).Message);
    }

    [Fact]
    public void TheWriterProducesAConfigThatReadsBackTheSame()
    {
        foreach (var fixture in Fixtures.Models)
        {
            var config = ModelConfig.Load(Fixtures.Dir(fixture));
            using var dir = new TempDirectory();
            File.WriteAllText(dir.File("config.json"), ModelConfigWriter.ToJson(config).ToJsonString());
            var back = ModelConfig.Load(dir.Path);
            Assert.Equal(config with { Architectures = [], EosTokenIds = [], Rope = new() }, back with { Architectures = [], EosTokenIds = [], Rope = new() });
            Assert.Equal(config.Architectures, back.Architectures);
            Assert.Equal(RopeFrequencies.Of(config.Rope, config.RotaryDim), RopeFrequencies.Of(back.Rope, back.RotaryDim));
        }
    }

    [Fact]
    public void UnsupportedValuesAreRefusedNamingTheField()
    {
        Assert.Contains("'model_type'", Refused(("model_type", "gpt2")).Message);
        Assert.Contains("gpt2", Refused(("model_type", "gpt2")).Message);
        Assert.Contains("'hidden_act'", Refused(("hidden_act", "gelu")).Message);
        Assert.Contains("'rope_scaling.rope_type'", Refused(("rope_scaling", new JsonObject { ["rope_type"] = "dynamic", ["factor"] = 4.0 })).Message);
        Assert.Contains("'rope_parameters.factor'", Refused(("rope_parameters", new JsonObject { ["rope_type"] = "linear" })).Message);
        Assert.Contains("'architectures'", Refused(("architectures", new JsonArray("LlamaForTokenClassification"))).Message);
        Assert.Contains("'quantization_config.quant_method'", Refused(("quantization_config", new JsonObject { ["quant_method"] = "bitsandbytes" })).Message);
        Assert.Contains("'torch_dtype'", Refused(("torch_dtype", "int8")).Message);
        Assert.Contains("'num_key_value_heads'", Refused(("num_key_value_heads", 3)).Message);
        Assert.Contains("'hidden_size'", Refused(("hidden_size", null)).Message);
        Assert.Contains("'vocab_size'", Refused(("vocab_size", "many")).Message);
    }

    [Fact]
    public void GenerationConfigReadsDefaultsAndEosLists()
    {
        Assert.Equal([2], GenerationConfig.Load(Fixtures.Dir("llama-gqa")).EosTokenIds);
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("generation_config.json"),
            """{"bos_token_id": 1, "eos_token_id": [2, 7], "do_sample": true, "temperature": 0.6, "top_p": 0.9, "top_k": 20}""");
        var generation = GenerationConfig.Load(dir.Path);
        Assert.Equal((1, true, 0.6, 0.9, 20), (generation.BosTokenId!.Value, generation.DoSample!.Value,
            generation.Temperature!.Value, generation.TopP!.Value, generation.TopK!.Value));
        Assert.Equal([2, 7], generation.EosTokenIds);
        Assert.Null(generation.RepetitionPenalty);
        using var without = new TempDirectory();
        Assert.Same(GenerationConfig.Empty, GenerationConfig.Load(without.Path));
    }
}
