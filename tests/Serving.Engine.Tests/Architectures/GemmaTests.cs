using System.Text.Json.Nodes;
using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Sampling;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Architectures;

/// Gemma 1, Gemma 2 and Gemma 3 (text) checkpoints, random and tiny, against a float64 forward written here from transformers'
/// modeling_gemma2 / modeling_gemma3: (1 + w) norms in float32, the attention and MLP outputs normed before the
/// residual adds, GeGLU (tanh), embeddings times sqrt(hidden), query_pre_attn_scalar, sliding-window layers (windows
/// shorter than the prompts, so prefill chunks and decode steps cross them), gemma3's q/k norms and local rope,
/// gemma2's soft-capping. Every position's logits over the paged pool, chunked; greedy tokens through the engine.
public sealed class GemmaTests
{
    public enum Family { Gemma2, Gemma3, Gemma1 }

    public static TheoryData<Family> Families => new(Enum.GetValues<Family>());

    [Theory, MemberData(nameof(Families))]
    public void EveryPositionsLogitsMatchTheReference(Family family)
    {
        using var folder = new TempDirectory();
        var weights = Write(family, folder.Path);
        int[] prompt = [1, 17, 305, 42, 9, 77, 480, 3, 250, 11, 64, 199, 7, 300];
        var expected = Reference(family, weights, prompt);
        foreach (var ranks in new[] { 1, 2 })   // chunks across the windows (5 and 6) and the blocks (4)
            ReferenceChecks.AssertEveryPositionMatches(folder.Path, prompt, [5, 4, 5], expected, $"{family}, {ranks} rank(s)", ranks);
    }

    [Theory, MemberData(nameof(Families))]
    public Task GreedyTokensThroughTheEngineAreTheReferences(Family family) =>
        ReferenceChecks.AssertEngineGreedyIsTheReferencesAsync(folder => Write(family, folder), (weights, tokens) => Reference(family, weights, tokens), [1, 17, 305, 42, 9, 77, 480, 3], 12);

    [Theory]
    [InlineData("language_model.model.")]   // transformers before 4.52
    [InlineData("model.language_model.")]   // after
    public void AMultimodalCheckpointServesItsTextDecoder(string prefix)
    {
        // Gemma 3 4B-27B are published as Gemma3ForConditionalGeneration: the text decoder's config is text_config (the
        // rest from Gemma3TextConfig's defaults), its tensors under a prefix, a vision tower beside them
        using var text = new TempDirectory();
        var weights = Write(Family.Gemma3, text.Path);
        using var multimodal = new TempDirectory();
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(text.Path, file), Path.Combine(multimodal.Path, file));
        var textConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(text.Path, "config.json")))!.AsObject();
        foreach (var field in new[] { "architectures", "torch_dtype", "eos_token_id", "bos_token_id", "head_dim" }) textConfig.Remove(field);
        textConfig["head_dim"] = HeadDim;
        File.WriteAllText(Path.Combine(multimodal.Path, "config.json"), new JsonObject
        {
            ["architectures"] = new JsonArray("Gemma3ForConditionalGeneration"), ["model_type"] = "gemma3",
            ["text_config"] = textConfig, ["vision_config"] = new JsonObject { ["model_type"] = "siglip_vision_model" },
            ["torch_dtype"] = "float32", ["eos_token_id"] = new JsonArray(2, 5), ["mm_tokens_per_image"] = 256,
        }.ToJsonString());
        var renamed = weights.ToDictionary(w => prefix + w.Key["model.".Length..], w => w.Value);
        renamed["vision_tower.vision_model.embeddings.patch_embedding.weight"] = zeros(4, 3, 2, 2);
        renamed["multi_modal_projector.mm_input_projection_weight"] = zeros(4, Hidden);
        SafetensorsWriter.Write(Path.Combine(multimodal.Path, "model.safetensors"), renamed);

        using var plain = ModelLoader.Load(text.Path, "float32");
        using var served = ModelLoader.Load(multimodal.Path, "float32");
        Assert.Equal("Gemma3ForCausalLM", served.Config.Architecture);
        Assert.Equal([2, 5], served.Config.EosTokenIds);
        int[] prompt = [1, 17, 305, 42, 9, 77, 480, 3, 250, 11];
        Assert.Equal(LastLogits(plain, prompt), LastLogits(served, prompt));
    }

    [Fact]
    public void ASparseTextConfigTakesGemma3sDefaults()
    {
        using var folder = new TempDirectory();
        File.WriteAllText(Path.Combine(folder.Path, "config.json"), """
            {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "torch_dtype": "bfloat16",
             "eos_token_id": [1, 106],
             "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text", "num_hidden_layers": 34,
                             "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024}}
            """);
        var config = Serving.Engine.Config.ModelConfig.Load(folder.Path);
        Assert.Equal((8, 4, 256, 262208, "bfloat16"), (config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, config.VocabSize, config.Dtype));
        Assert.Equal(1 / 16.0, config.AttentionScale!.Value, 12);
        Assert.Equal([1, 106], config.EosTokenIds);
        Assert.True(config.TieWordEmbeddings);
        Assert.Equal(34, config.LayerWindows.Count);
        Assert.Equal([1024, 1024, 1024, 1024, 1024, null], config.LayerWindows.Take(6));
        Assert.Equal((1000000.0, Serving.Engine.Config.RopeType.Linear, 8.0), (config.Rope.Theta, config.Rope.Type, config.Rope.Factor));
        Assert.Equal(10000.0, config.LocalRope!.Theta);
        Assert.Equal([true, true, true, true, true, false], Enumerable.Range(0, 6).Select(config.TurnsByLocalRope));
    }

    /// The fused kernels weigh gemma's norms by (1 + w), turn gemma3's sliding layers by their own rope and soft-cap
    /// gemma2's attention, so all three run the fused backend on CUDA.
    [Theory, MemberData(nameof(Families))]
    public void TheFusedKernelsComputeEveryGemma(Family family)
    {
        var config = ReferenceChecks.ConfigOf(folder => Write(family, folder));
        Assert.True(config.FusedKernelsCompute);
        Assert.Equal(Shape(family).AttnCap ?? 0, KernelShape.Of(config, ScalarType.BFloat16, KVCacheDtype.BFloat16).AttentionSoftcap);
        Assert.Equal(Serving.Engine.Config.RmsNormWeight.OffsetBeforeRounding, config.NormWeight);
        Assert.False(config.IsLlamaBlock);
    }

    [Theory, MemberData(nameof(Families))]
    public void TheConfigWriterWritesWhatTheReaderReadsBack(Family family)
    {
        using var folder = new TempDirectory();
        Write(family, folder.Path);
        ReferenceChecks.AssertConfigRoundTrips(folder.Path);
    }

    static float[] LastLogits(LoadedModel model, int[] prompt)
    {
        using var cache = model.CreateKVCache(numBlocks: 16, blockSize: 4);
        var runner = new PagedRunner(model, cache);
        return runner.Step([(runner.Add(prompt), prompt.Length)])[0];
    }

    [Fact]
    public void WhatGemmaDoesNotServeIsRefused()
    {
        using var folder = new TempDirectory();
        Write(Family.Gemma3, folder.Path);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder.Path, "config.json")))!.AsObject();
        config["layer_types"] = new JsonArray("sliding_attention", "full_attention");
        File.WriteAllText(Path.Combine(folder.Path, "config.json"), config.ToJsonString());
        Assert.Contains("layer_types", Assert.Throws<Serving.Engine.Config.ModelConfigException>(() => Serving.Engine.Config.ModelConfig.Load(folder.Path)).Message);
    }

    const int Vocab = 512, Hidden = 64, Inter = 96, Layers = 4, Heads = 4, KVHeads = 2, HeadDim = 16;

    static (double Scalar, double? AttnCap, double? FinalCap, int Window, bool[] Sliding, double GlobalTheta, double GlobalFactor, double LocalTheta) Shape(Family family) =>
        family switch
        {
            Family.Gemma2 => (16, 5.0, 3.0, 5, [true, false, true, false], 10000, 1, 10000),
            Family.Gemma3 => (32, null, null, 6, [true, true, false, true], 1000000, 2, 10000),
            _ => (HeadDim, null, null, 0, [false, false, false, false], 10000, 1, 10000),   // gemma 1: 1 / sqrt(head_dim), no windows
        };

    /// config.json, random weights (norms around 0: they are offsets from 1) and the llama-gqa fixture's tokenizer.
    internal static Dictionary<string, Tensor> Write(Family family, string folder)
    {
        var shape = Shape(family);
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(family switch { Family.Gemma2 => "Gemma2ForCausalLM", Family.Gemma3 => "Gemma3ForCausalLM", _ => "GemmaForCausalLM" }),
            ["model_type"] = family switch { Family.Gemma2 => "gemma2", Family.Gemma3 => "gemma3_text", _ => "gemma" },
            ["hidden_size"] = Hidden, ["intermediate_size"] = Inter, ["num_hidden_layers"] = Layers,
            ["num_attention_heads"] = Heads, ["num_key_value_heads"] = KVHeads, ["head_dim"] = HeadDim, ["vocab_size"] = Vocab,
            ["rms_norm_eps"] = 1e-6, ["max_position_embeddings"] = 256, ["hidden_activation"] = "gelu_pytorch_tanh",
            ["bos_token_id"] = 1, ["eos_token_id"] = 2, ["torch_dtype"] = "float32", ["rope_theta"] = shape.GlobalTheta,
        };
        if (family != Family.Gemma1)
        {
            config["query_pre_attn_scalar"] = shape.Scalar;
            config["sliding_window"] = shape.Window;
        }
        if (family == Family.Gemma2)
        {
            config["attn_logit_softcapping"] = shape.AttnCap;
            config["final_logit_softcapping"] = shape.FinalCap;
        }
        else
        {
            config["layer_types"] = new JsonArray([.. shape.Sliding.Select(s => (JsonNode)(s ? "sliding_attention" : "full_attention"))]);
            config["rope_local_base_freq"] = shape.LocalTheta;
            config["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = shape.GlobalFactor };
        }
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        ReferenceChecks.CopyTokenizer(folder);

        var generator = new Generator(seed: (ulong)family + 7);
        Tensor Random(params long[] dims) => randn(dims, generator: generator) * 0.1f;
        var weights = new Dictionary<string, Tensor> { ["model.embed_tokens.weight"] = Random(Vocab, Hidden), ["model.norm.weight"] = Random(Hidden) };
        for (var i = 0; i < Layers; i++)
        {
            var p = $"model.layers.{i}.";
            weights[p + "self_attn.q_proj.weight"] = Random(Heads * HeadDim, Hidden);
            weights[p + "self_attn.k_proj.weight"] = Random(KVHeads * HeadDim, Hidden);
            weights[p + "self_attn.v_proj.weight"] = Random(KVHeads * HeadDim, Hidden);
            weights[p + "self_attn.o_proj.weight"] = Random(Hidden, Heads * HeadDim);
            weights[p + "mlp.gate_proj.weight"] = Random(Inter, Hidden);
            weights[p + "mlp.up_proj.weight"] = Random(Inter, Hidden);
            weights[p + "mlp.down_proj.weight"] = Random(Hidden, Inter);
            var norms = family == Family.Gemma1 ? new[] { "input_layernorm", "post_attention_layernorm" }
                : ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"];
            foreach (var norm in norms) weights[p + norm + ".weight"] = Random(Hidden);
            if (family == Family.Gemma3)
            {
                weights[p + "self_attn.q_norm.weight"] = Random(HeadDim);
                weights[p + "self_attn.k_norm.weight"] = Random(HeadDim);
            }
        }
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), weights);
        return weights;
    }

    /// transformers' forward in float64: logits of every position of tokens.
    internal static double[][] Reference(Family family, Dictionary<string, Tensor> weights, int[] tokens) =>
        Forward(family, weights, tokens, bidirectional: false, hidden =>
        {
            var logits = hidden.matmul(weights["model.embed_tokens.weight"].to_type(ScalarType.Float64).t());
            return Shape(family).FinalCap is { } final ? (logits / final).tanh() * final : logits;
        });

    /// The decoder's final norm output (tokens, hidden) in float64 through head, as rows. bidirectional (EmbeddingGemma's
    /// use_bidirectional_attention): every position sees the whole prompt, a sliding layer's positions less than
    /// sliding_window / 2 + 1 apart (transformers' Gemma3TextConfig halves the window then).
    static double[][] Forward(Family family, Dictionary<string, Tensor> weights, int[] tokens, bool bidirectional, Func<Tensor, Tensor> head)
    {
        using var scope = NewDisposeScope();
        var shape = Shape(family);
        Tensor W(string name) => weights[name].to_type(ScalarType.Float64);
        Tensor Norm(Tensor x, Tensor w) => x * (x.square().mean([-1], keepdim: true) + 1e-6).rsqrt() * (1 + w);
        var t = tokens.Length;
        var h = W("model.embed_tokens.weight").index_select(0, tensor(tokens.Select(x => (long)x).ToArray())) * Math.Sqrt(Hidden);
        for (var i = 0; i < Layers; i++)
        {
            var p = $"model.layers.{i}.";
            var sliding = shape.Sliding[i];
            var x = Norm(h, W(p + "input_layernorm.weight"));
            var q = x.matmul(W(p + "self_attn.q_proj.weight").t()).view(t, Heads, HeadDim);
            var k = x.matmul(W(p + "self_attn.k_proj.weight").t()).view(t, KVHeads, HeadDim);
            var v = x.matmul(W(p + "self_attn.v_proj.weight").t()).view(t, KVHeads, HeadDim);
            if (family == Family.Gemma3)
            {
                q = Norm(q, W(p + "self_attn.q_norm.weight"));
                k = Norm(k, W(p + "self_attn.k_norm.weight"));
            }
            var (theta, factor) = family == Family.Gemma3 && sliding ? (shape.LocalTheta, 1.0) : (shape.GlobalTheta, shape.GlobalFactor);
            var rope = ReferenceChecks.HalfRope(t, HeadDim, theta, factor);
            (q, k) = (ReferenceChecks.RotateHalf(q, rope), ReferenceChecks.RotateHalf(k, rope));
            var distance = (Serving.Engine.HeldScalars.Range(0, t).unsqueeze(1) - Serving.Engine.HeldScalars.Range(0, t).unsqueeze(0)).abs();
            var hidden = !bidirectional ? ReferenceChecks.CausalMask(t, sliding ? shape.Window : null)
                : sliding ? distance >= tensor(shape.Window / 2 + 1) : zeros(t, t, ScalarType.Bool);
            var attended = ReferenceChecks.Attend(q, k, v, 1 / Math.Sqrt(shape.Scalar), hidden, shape.AttnCap);
            var output = attended.matmul(W(p + "self_attn.o_proj.weight").t());
            // gemma 1: Llama's two norms; gemma 2 and 3 norm the sublayers' outputs too (post_attention_layernorm is then one)
            var sandwich = family != Family.Gemma1;
            h = h + (sandwich ? Norm(output, W(p + "post_attention_layernorm.weight")) : output);
            x = Norm(h, W(p + (sandwich ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight")));
            var gate = x.matmul(W(p + "mlp.gate_proj.weight").t());
            var geluTanh = 0.5 * gate * (1 + (Math.Sqrt(2 / Math.PI) * (gate + 0.044715 * gate * gate.square())).tanh());
            var mlp = (geluTanh * x.matmul(W(p + "mlp.up_proj.weight").t())).matmul(W(p + "mlp.down_proj.weight").t());
            h = h + (sandwich ? Norm(mlp, W(p + "post_feedforward_layernorm.weight")) : mlp);
        }
        return ReferenceChecks.Rows(head(Norm(h, W("model.norm.weight"))));
    }

    /// EmbeddingGemma's layout on the Gemma 3 checkpoint: a Gemma3TextModel (a base model's tensor names, no LM head) under
    /// use_bidirectional_attention, and sentence-transformers modules: MEAN pooling, a Dense projection without bias
    /// (the identity) and one with a bias and tanh (sentence-transformers' default), Normalize. The pooling runner's
    /// embedding is the float64 forward's, where every position sees the whole prompt and a sliding layer's positions
    /// less than 6 / 2 + 1 apart, pooled and projected as sentence-transformers does; the config round-trips.
    [Fact]
    public Task EmbeddingGemmaEmbedsAsSentenceTransformersDoes() => AssertEmbeddingGemmaAsync(device: "cpu");

    internal static async Task AssertEmbeddingGemmaAsync(string device)
    {
        using var folder = new TempDirectory();
        var weights = Write(Family.Gemma3, folder.Path);
        var path = Path.Combine(folder.Path, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config["architectures"] = new JsonArray("Gemma3TextModel");
        config["use_bidirectional_attention"] = true;
        File.WriteAllText(path, config.ToJsonString());
        SafetensorsWriter.Write(Path.Combine(folder.Path, "model.safetensors"), weights.ToDictionary(w => w.Key["model.".Length..], w => w.Value));
        var generator = new Generator(seed: 11);
        var (wide, narrow, bias) = (randn(96, Hidden, generator: generator) * 0.2f, randn(48, 96, generator: generator) * 0.2f, randn(48, generator: generator) * 0.1f);
        File.WriteAllText(Path.Combine(folder.Path, "modules.json"), """
            [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
             {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
             {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"},
             {"idx": 4, "name": "4", "path": "4_Normalize", "type": "sentence_transformers.models.Normalize"}]
            """);
        void Module(string name, string moduleConfig, Dictionary<string, Tensor>? tensors = null)
        {
            Directory.CreateDirectory(Path.Combine(folder.Path, name));
            File.WriteAllText(Path.Combine(folder.Path, name, "config.json"), moduleConfig);
            if (tensors is not null) SafetensorsWriter.Write(Path.Combine(folder.Path, name, "model.safetensors"), tensors);
        }
        Module("1_Pooling", $$"""{"word_embedding_dimension": {{Hidden}}, "pooling_mode_mean_tokens": true, "pooling_mode_cls_token": false}""");
        Module("2_Dense", $$"""{"in_features": {{Hidden}}, "out_features": 96, "bias": false, "activation_function": "torch.nn.modules.linear.Identity"}""",
            new() { ["linear.weight"] = wide });
        Module("3_Dense", """{"in_features": 96, "out_features": 48, "bias": true}""", new() { ["linear.weight"] = narrow, ["linear.bias"] = bias });
        Directory.CreateDirectory(Path.Combine(folder.Path, "4_Normalize"));
        var read = Serving.Engine.Config.ModelConfig.Load(folder.Path);
        Assert.False(read.IsCausal);
        Assert.Equal([4, 4, null, 4], read.LayerWindows);
        ReferenceChecks.AssertConfigRoundTrips(folder.Path);   // written as is_causal false and the halved window, read back alike

        int[] prompt = [1, 17, 305, 42, 9, 77, 480, 3, 250, 11, 64, 199, 7, 300];   // past the window both ways
        var expected = Forward(Family.Gemma3, weights, prompt, bidirectional: true, hidden =>
        {
            var projected = hidden.mean([0], keepdim: true).matmul(wide.to_type(ScalarType.Float64).t())
                .matmul(narrow.to_type(ScalarType.Float64).t()).add(bias.to_type(ScalarType.Float64)).tanh();
            return projected / projected.norm();
        })[0];
        await using var engine = await Execution.EngineTestHelpers.StartAsync("llama-gqa", o => o with { Model = folder.Path, BlockSize = 4, Device = device });
        Assert.Equal((Serving.Engine.Pooling.RunnerType.Pooling, 48), (engine.Info.Runner, engine.Info.EmbeddingSize));
        Assert.Contains("dense=64->96->48", engine.Info.Pooler!.ToString());
        var embedding = (await engine.EmbedAsync(new GenerationRequest
        {
            RequestId = "embeddinggemma", PromptTokenIds = prompt, Pooling = engine.Info.Pooler.Params(),
        }, default)).Embedding;
        Assert.Equal(48, embedding.Length);
        var error = expected.Zip(embedding, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(error < 1e-5, $"max |embedding - float64| {error}");
    }
}

/// The same checkpoints on CUDA: greedy tokens through the engine as the float64 reference gives them (on the fused
/// backend with CUDA graphs, Gemma 2's attention soft-capped in its kernels), and the fused backend's logits against the
/// plain one's.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class GemmaGpuTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [GpuTheory, MemberData(nameof(GemmaTests.Families), MemberType = typeof(GemmaTests))]
    public void TheFusedBackendComputesThemAsThePlainOne(GemmaTests.Family family) =>
        ReferenceChecks.AssertFusedAgreesWithPlain(folder => GemmaTests.Write(family, folder), output.WriteLine);

    [GpuTheory, MemberData(nameof(GemmaTests.Families), MemberType = typeof(GemmaTests))]
    public Task OnCudaTheyAnswerAsTheReference(GemmaTests.Family family) =>
        ReferenceChecks.AssertEngineGreedyIsTheReferencesAsync(folder => GemmaTests.Write(family, folder), (weights, tokens) => GemmaTests.Reference(family, weights, tokens), [1, 17, 305, 42, 9, 77, 480, 3], 12, device: "cuda");

    /// EmbeddingGemma (bidirectional, so the plain backend's masks) on CUDA embeds as the float64 forward does.
    [GpuFact]
    public Task EmbeddingGemmaOnCudaEmbedsAsSentenceTransformersDoes() => GemmaTests.AssertEmbeddingGemmaAsync(device: "cuda");
}
