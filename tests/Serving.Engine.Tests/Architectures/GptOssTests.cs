using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Architectures;

/// gpt-oss checkpoints, random and tiny, against a float64 forward written here from transformers' modeling_gpt_oss:
/// biased q/k/v/o, a sink logit per query head in each softmax, sliding layers (window 3, shorter than the prompts)
/// between full ones, the router's top-k logits softmaxed, experts stored [E, hidden, 2F] with interleaved gate/up
/// columns and biases, the clamped SwiGLU with (up + 1). Every position's logits over the paged pool in chunks; greedy
/// tokens through the engine; the released checkpoints' MXFP4 experts against their float twin.
public sealed class GptOssTests
{
    const int Vocab = 512, Hidden = 64, Heads = 4, KVHeads = 2, HeadDim = 16, Layers = 3, Experts = 4, TopK = 2, Width = 32, Window = 3;
    const double Limit = 7.0, Theta = 150000.0;
    static readonly Scalar HeldLimit = Limit.ToScalar(), HeldMinusLimit = (-Limit).ToScalar();
    static readonly Scalar ScaleOfOne = 127.ToScalar(), ScaleOfNaN = 255.ToScalar();   // MXFP4 scales: 2^0, and the NaN byte

    [Fact]
    public void EveryPositionsLogitsMatchTheReference()
    {
        using var folder = new TempDirectory();
        var weights = Write(folder.Path);
        int[] prompt = [1, 17, 305, 42, 9, 77, 480, 3, 250, 11, 64, 199];
        ReferenceChecks.AssertEveryPositionMatches(folder.Path, prompt, [5, 4, 3], Reference(weights, prompt), "gpt-oss");
    }

    [Fact]
    public async Task GreedyTokensThroughTheEngineAreTheReferences()
    {
        using var folder = new TempDirectory();
        var weights = Write(folder.Path);
        int[][] prompts = [[1, 17, 305, 42, 9, 77], [1, 250, 11, 64]];
        await using var engine = await Execution.EngineTestHelpers.StartAsync("llama-gqa", o => o with { Model = folder.Path, BlockSize = 4 });
        var completions = await Task.WhenAll(prompts.Select((p, i) =>
            Execution.EngineTestHelpers.CollectAsync(engine, Execution.EngineTestHelpers.Greedy(p, 10, $"r{i}"))));
        for (var i = 0; i < prompts.Length; i++)
            Assert.Equal(ReferenceChecks.Greedy(tokens => Reference(weights, tokens), prompts[i], 10), completions[i].Tokens());
    }

    [Fact]
    public void Mxfp4ExpertsGiveTheLogitsOfTheirFloatTwin()
    {
        // the released checkpoints store each expert matrix output-major as e2m1 nibbles in blocks of 32 with a
        // power-of-two scale: packed here by the format's definition (OCP MX), the twin holds the values they stand for
        using var twin = new TempDirectory();
        using var packed = new TempDirectory();
        var weights = Write(twin.Path);
        var generator = new Generator(seed: 29);
        var stored = new Dictionary<string, Tensor>(weights.Where(w => !w.Key.Contains(".mlp.experts.") || w.Key.EndsWith("_bias")));
        foreach (var (name, rows, columns) in ExpertMatrices())
        {
            var nibbles = randint(0, 16, [Experts, rows, columns], generator: generator).to_type(ScalarType.Int32);   // (E, out, in)
            var exponents = randint(122, 130, [Experts, rows, columns / 32], generator: generator).to_type(ScalarType.Int32);
            var scales = tensor(Enumerable.Range(0, 256).Select(e => Math.ScaleB(1.0, e - 127)).ToArray())
                .index_select(0, exponents.view(-1)).view(exponents.shape);
            var values = E2m1(nibbles) * scales.repeat_interleave(32, 2);
            weights[name] = values.transpose(1, 2).contiguous().to_type(ScalarType.Float32);      // (E, in, out), as the model holds it
            var pairs = nibbles.view(Experts, rows, columns / 2, 2);
            stored[name + "_blocks"] = (pairs.select(-1, 0) + pairs.select(-1, 1) * 16).view(Experts, rows, columns / 32, 16).to_type(ScalarType.Byte);
            stored[name + "_scales"] = exponents.to_type(ScalarType.Byte);
        }
        SafetensorsWriter.Write(Path.Combine(twin.Path, "model.safetensors"), weights);
        SafetensorsWriter.Write(Path.Combine(packed.Path, "model.safetensors"), stored);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(twin.Path, "config.json")))!.AsObject();
        config["quantization_config"] = new JsonObject
        {
            ["quant_method"] = "mxfp4", ["modules_to_not_convert"] = new JsonArray("model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"),
        };
        File.WriteAllText(Path.Combine(packed.Path, "config.json"), config.ToJsonString());
        ReferenceChecks.CopyTokenizer(packed.Path);

        int[] prompt = [1, 17, 305, 42, 9, 77, 480, 3, 250, 11];
        var expected = Reference(weights, prompt);
        ReferenceChecks.AssertEveryPositionMatches(packed.Path, prompt, [6, 4], expected, "gpt-oss, MXFP4 experts");
        ReferenceChecks.AssertEveryPositionMatches(twin.Path, prompt, [6, 4], expected, "gpt-oss, their float twin");
    }

    [Fact]
    public void TheReleasedConfigIsReadAsTransformersReadsIt()
    {
        // gpt-oss-20b's config.json, as published
        using var folder = new TempDirectory();
        File.WriteAllText(Path.Combine(folder.Path, "config.json"), """
            {"architectures": ["GptOssForCausalLM"], "attention_bias": true, "attention_dropout": 0.0, "eos_token_id": 200002,
             "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880, "initial_context_length": 4096,
             "initializer_range": 0.02, "intermediate_size": 2880,
             "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention",
               "sliding_attention", "full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention",
               "sliding_attention", "full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention",
               "sliding_attention", "full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention"],
             "max_position_embeddings": 131072, "model_type": "gpt_oss", "num_attention_heads": 64, "num_experts_per_tok": 4,
             "num_hidden_layers": 24, "num_key_value_heads": 8, "num_local_experts": 32, "output_router_logits": false,
             "pad_token_id": 199999, "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn",
               "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"], "quant_method": "mxfp4"},
             "rms_norm_eps": 1e-05, "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
               "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": false}, "rope_theta": 150000,
             "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0, "tie_word_embeddings": false,
             "transformers_version": "4.55.0.dev0", "use_cache": true, "vocab_size": 201088}
            """);
        var config = ModelConfig.Load(folder.Path);
        Assert.Equal((64, 8, 64, 32, 4, 2880), (config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, config.NumExperts,
            config.NumExpertsPerToken, config.ExpertIntermediateSize));
        Assert.True(config.AttentionSinks && config.QkvBias && config.OutputBias && !config.IsLlamaBlock);
        Assert.True(config.FusedKernelsCompute);   // on tensor cores, which take the sinks
        Assert.Equal(7.0, config.ExpertSwigluLimit);
        Assert.Equal(RmsNormWeight.BeforeRounding, config.NormWeight);
        Assert.Equal(Enumerable.Range(0, 24).Select(i => i % 2 == 0 ? 128 : (int?)null), config.LayerWindows);
        Assert.Equal((RopeType.Yarn, 32.0, 4096, false), (config.Rope.Type, config.Rope.Factor, config.Rope.OriginalMaxPositionEmbeddings, config.Rope.Truncate));
        Assert.Equal(0.1 * Math.Log(32) + 1, config.Rope.AttentionScaling, 12);
        Assert.Equal(131072, config.MaxContextLength);
        Assert.Equal("mxfp4", config.Quantization!.Method);

        // a config that leaves fields out takes GptOssConfig's, its yarn rope included
        File.WriteAllText(Path.Combine(folder.Path, "config.json"), """{"architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss"}""");
        var sparse = ModelConfig.Load(folder.Path);
        Assert.Equal((36, 128, 4, 64, 8, 2880), (sparse.NumHiddenLayers, sparse.NumExperts, sparse.NumExpertsPerToken, sparse.NumAttentionHeads,
            sparse.NumKeyValueHeads, sparse.HiddenSize));
        Assert.Equal(config.Rope, sparse.Rope);
        Assert.Equal(128, sparse.LayerWindows[0]);
    }

    [Fact]
    public void Mxfp4BlocksThatAreNotBytesOrScalesThatAreNaNAreRefused()
    {
        using var folder = new TempDirectory();
        var weights = Write(folder.Path);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder.Path, "config.json")))!.AsObject();
        config["quantization_config"] = new JsonObject { ["quant_method"] = "mxfp4" };
        File.WriteAllText(Path.Combine(folder.Path, "config.json"), config.ToJsonString());
        void Store(Tensor blocks, Tensor scales)
        {
            var stored = new Dictionary<string, Tensor>(weights);
            stored.Remove("model.layers.0.mlp.experts.down_proj");
            stored["model.layers.0.mlp.experts.down_proj_blocks"] = blocks;
            stored["model.layers.0.mlp.experts.down_proj_scales"] = scales;
            SafetensorsWriter.Write(Path.Combine(folder.Path, "model.safetensors"), stored);
        }
        Store(zeros([Experts, Hidden, Width / 32, 16], ScalarType.Int8), full([Experts, Hidden, Width / 32], ScaleOfOne, ScalarType.Byte));
        Assert.Contains("not U8", Assert.Throws<CheckpointException>(() => ModelLoader.Load(folder.Path, "float32")).Message);
        Store(zeros([Experts, Hidden, Width / 32, 16], ScalarType.Byte), full([Experts, Hidden, Width / 32], ScaleOfNaN, ScalarType.Byte));
        Assert.Contains("scale of 255", Assert.Throws<CheckpointException>(() => ModelLoader.Load(folder.Path, "float32")).Message);
    }

    [Fact]
    public void WhatGptOssDoesNotTakeIsRefused()
    {
        using var folder = new TempDirectory();
        var weights = Write(folder.Path);
        Assert.Contains("one device", Assert.Throws<ModelLoadException>(() => ModelLoader.Load(folder.Path, "float32", tensorParallelSize: 2)).Message);
        weights.Remove("model.layers.1.self_attn.sinks");
        SafetensorsWriter.Write(Path.Combine(folder.Path, "model.safetensors"), weights);
        Assert.Contains("model.layers.1.self_attn.sinks", Assert.Throws<CheckpointException>(() => ModelLoader.Load(folder.Path, "float32")).Message);
    }

    [Fact]
    public void InSixteenBitsItsStepsNeverWaitForTheHost()
    {
        // its experts stacked output-major from the checkpoint's input-major ones, so their rows group on the device
        using var folder = new TempDirectory();
        Write(folder.Path);
        using (var model = ModelLoader.Load(folder.Path, "bfloat16", CPU)) Assert.False(model.StepWaitsForTheHost);
        using (var model = ModelLoader.Load(folder.Path, "float32", CPU)) Assert.True(model.StepWaitsForTheHost);
    }

    [Fact]
    public void TheConfigWriterWritesWhatTheReaderReadsBack()
    {
        using var folder = new TempDirectory();
        Write(folder.Path);
        ReferenceChecks.AssertConfigRoundTrips(folder.Path);
    }

    /// The OCP MX spec's e2m1 values by code: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives (sign bit 3).
    static Tensor E2m1(Tensor codes)
    {
        double[] magnitudes = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
        var table = tensor(magnitudes.Concat(magnitudes.Select(m => -m)).ToArray());
        return table.index_select(0, codes.view(-1)).view(codes.shape);
    }

    // the expert matrices as the blocks store them: (name, rows = outputs, columns = inputs)
    static IEnumerable<(string Name, long Rows, long Columns)> ExpertMatrices()
    {
        for (var i = 0; i < Layers; i++)
        {
            yield return ($"model.layers.{i}.mlp.experts.gate_up_proj", 2 * Width, Hidden);
            yield return ($"model.layers.{i}.mlp.experts.down_proj", Hidden, Width);
        }
    }

    /// config.json (layer_types left to the family's pattern: sliding, full, sliding), random weights and the llama-gqa
    /// fixture's tokenizer. hidden, width (the experts') and a factor on the projections' and experts' weights make a
    /// wider, calmer twin (the FP8 test's: FP8's rounding on this one's large weights moves its logits past any bound).
    internal static Dictionary<string, Tensor> Write(string folder, int hidden = Hidden, int width = Width, double weightScale = 1.0)
    {
        File.WriteAllText(Path.Combine(folder, "config.json"), new JsonObject
        {
            ["architectures"] = new JsonArray("GptOssForCausalLM"), ["model_type"] = "gpt_oss",
            ["hidden_size"] = hidden, ["intermediate_size"] = width, ["num_hidden_layers"] = Layers, ["num_attention_heads"] = Heads,
            ["num_key_value_heads"] = KVHeads, ["head_dim"] = HeadDim, ["vocab_size"] = Vocab, ["rms_norm_eps"] = 1e-5,
            ["rope_theta"] = Theta, ["rope_scaling"] = new JsonObject { ["rope_type"] = "default" }, ["max_position_embeddings"] = 256, ["sliding_window"] = Window, ["num_local_experts"] = Experts,
            ["num_experts_per_tok"] = TopK, ["swiglu_limit"] = Limit, ["attention_bias"] = true, ["tie_word_embeddings"] = false,
            ["torch_dtype"] = "float32", ["bos_token_id"] = 1, ["eos_token_id"] = 2,
        }.ToJsonString());
        ReferenceChecks.CopyTokenizer(folder);

        var generator = new Generator(seed: 31);
        Tensor Random(double scale, params long[] dims) => randn(dims, generator: generator) * scale;
        Tensor Norm(long width) => 1 + randn([width], generator: generator) * 0.1f;
        var weights = new Dictionary<string, Tensor>
        {
            ["model.embed_tokens.weight"] = Random(0.15, Vocab, hidden), ["model.norm.weight"] = Norm(hidden), ["lm_head.weight"] = Random(0.15, Vocab, hidden),
        };
        for (var i = 0; i < Layers; i++)
        {
            var p = $"model.layers.{i}.";
            foreach (var (name, rows) in new[] { ("q_proj", Heads * HeadDim), ("k_proj", KVHeads * HeadDim), ("v_proj", KVHeads * HeadDim) })
            {
                weights[$"{p}self_attn.{name}.weight"] = Random(0.15 * weightScale, rows, hidden);
                weights[$"{p}self_attn.{name}.bias"] = Random(0.15, rows);
            }
            weights[p + "self_attn.o_proj.weight"] = Random(0.15 * weightScale, hidden, Heads * HeadDim);
            weights[p + "self_attn.o_proj.bias"] = Random(0.15, hidden);
            weights[p + "self_attn.sinks"] = Random(2, Heads);               // some heads give the sink much of their weight
            weights[p + "input_layernorm.weight"] = Norm(hidden);
            weights[p + "post_attention_layernorm.weight"] = Norm(hidden);
            weights[p + "mlp.router.weight"] = Random(0.6, Experts, hidden);  // a router with opinions
            weights[p + "mlp.router.bias"] = Random(0.5, Experts);
            weights[p + "mlp.experts.gate_up_proj"] = Random(0.6 * weightScale, Experts, hidden, 2 * width);   // large enough to meet the clamps
            weights[p + "mlp.experts.gate_up_proj_bias"] = Random(0.5, Experts, 2 * width);
            weights[p + "mlp.experts.down_proj"] = Random(0.1 * weightScale, Experts, width, hidden);
            weights[p + "mlp.experts.down_proj_bias"] = Random(0.1, Experts, hidden);
        }
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), weights);
        return weights;
    }

    /// transformers' GptOssForCausalLM forward in float64: logits of every position of tokens.
    internal static double[][] Reference(Dictionary<string, Tensor> weights, int[] tokens)
    {
        using var scope = NewDisposeScope();
        Tensor W(string name) => weights[name].to_type(ScalarType.Float64);
        Tensor Norm(Tensor x, Tensor w) => w * (x * (x.square().mean([-1], keepdim: true) + 1e-5).rsqrt());
        var t = tokens.Length;
        var h = W("model.embed_tokens.weight").index_select(0, tensor(tokens.Select(x => (long)x).ToArray()));
        var rope = ReferenceChecks.HalfRope(t, HeadDim, Theta);
        var width = weights["model.layers.0.mlp.experts.down_proj"].shape[1];
        for (var i = 0; i < Layers; i++)
        {
            var p = $"model.layers.{i}.";
            var x = Norm(h, W(p + "input_layernorm.weight"));
            Tensor Projection(string name) => x.matmul(W($"{p}self_attn.{name}.weight").t()) + W($"{p}self_attn.{name}.bias");
            var q = ReferenceChecks.RotateHalf(Projection("q_proj").view(t, Heads, HeadDim), rope);
            var k = ReferenceChecks.RotateHalf(Projection("k_proj").view(t, KVHeads, HeadDim), rope);
            var v = Projection("v_proj").view(t, KVHeads, HeadDim);
            var hidden = ReferenceChecks.CausalMask(t, i % 2 == 0 ? Window : null);   // layer_types' default: sliding from the first
            var attended = AttendWithSinks(q, k, v, W(p + "self_attn.sinks"), hidden);
            h = h + attended.matmul(W(p + "self_attn.o_proj.weight").t()) + W(p + "self_attn.o_proj.bias");

            x = Norm(h, W(p + "post_attention_layernorm.weight"));
            var (top, chosen) = (x.matmul(W(p + "mlp.router.weight").t()) + W(p + "mlp.router.bias")).topk(TopK, dim: -1);
            var routing = top.softmax(-1);
            var output = zeros_like(x);
            for (var token = 0; token < t; token++)
                for (var slot = 0; slot < TopK; slot++)
                {
                    var e = chosen[token, slot].item<long>();
                    var gateUp = x[token].matmul(W(p + "mlp.experts.gate_up_proj")[e]) + W(p + "mlp.experts.gate_up_proj_bias")[e];   // (2F)
                    var gate = gateUp.view(width, 2).select(1, 0).clamp_max(HeldLimit);
                    var up = gateUp.view(width, 2).select(1, 1).clamp(HeldMinusLimit, HeldLimit);
                    var glu = gate * nn.functional.sigmoid(gate * 1.702);
                    var y = ((up + 1) * glu).matmul(W(p + "mlp.experts.down_proj")[e]) + W(p + "mlp.experts.down_proj_bias")[e];
                    output[token] += y * routing[token, slot];
                }
            h = h + output;
        }
        return ReferenceChecks.Rows(Norm(h, W("model.norm.weight")).matmul(W("lm_head.weight").t()));
    }

    // eager_attention_forward with sinks: each head's scores and its sink logit softmaxed together, the sink's column
    // dropped; q (t, H, D), k and v (t, G, D) -> (t, H x D)
    static Tensor AttendWithSinks(Tensor q, Tensor k, Tensor v, Tensor sinks, Tensor hidden)
    {
        var t = q.shape[0];
        var repeat = Heads / KVHeads;
        var keys = k.repeat_interleave(repeat, 1).permute(1, 2, 0);                                  // (H, D, t)
        var values = v.repeat_interleave(repeat, 1).permute(1, 0, 2);                                // (H, t, D)
        var scores = (q.permute(1, 0, 2).matmul(keys) / Math.Sqrt(HeadDim)).masked_fill(hidden, Serving.Engine.HeldScalars.MinusInfinity);   // (H, t, t)
        var combined = cat([scores, sinks.view(Heads, 1, 1).expand(Heads, t, 1)], -1);
        var probabilities = combined.softmax(-1).narrow(-1, 0, t);
        return probabilities.matmul(values).permute(1, 0, 2).reshape(t, Heads * HeadDim);
    }
}

/// The same checkpoint on CUDA: in float32 (the plain backend: the CUDA-core prefill has no sinks) greedy tokens as the
/// float64 reference gives them; in bfloat16 the fused backend's logits (its tensor-core attention with the sinks)
/// against the plain one's and, as close as those, against the reference.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class GptOssGpuTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [GpuFact]
    public void TheFusedBackendComputesItAsThePlainOne() =>
        ReferenceChecks.AssertFusedAgreesWithPlain(folder => GptOssTests.Write(folder), output.WriteLine, GptOssTests.Reference);

    [GpuFact]
    public void ItsDecodeStepsReplayAsCapturedGraphs()
    {
        using var folder = new TempDirectory();
        GptOssTests.Write(folder.Path);
        using var model = ModelLoader.Load(folder.Path, "bfloat16", CUDA);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        Assert.True(model.CanCaptureGraphs(cache.Dtype));
        Model.Backends.CudaBackendTests.AssertReplaysAreEager(model, cache, [[5, 40, 17], [33], [1, 70, 65, 9, 128]], output.WriteLine);
    }

    [GpuFact]
    public Task OnCudaItAnswersAsTheReference() =>
        ReferenceChecks.AssertEngineGreedyIsTheReferencesAsync(folder => GptOssTests.Write(folder), GptOssTests.Reference, [1, 17, 305, 42, 9, 77], 10, device: "cuda");
}
