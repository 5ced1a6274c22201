using TorchSharp;
using System.Text.Json.Nodes;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Architectures;

/// Mixtral, Qwen3-MoE and Qwen2-MoE checkpoints, random and tiny, against a float64 forward written here from
/// transformers' modeling_mixtral / modeling_qwen3_moe / modeling_qwen2_moe (its shared expert behind a sigmoid gate): each token's top-k experts by the router's softmax (Mixtral's normalized,
/// Qwen3-MoE's as norm_topk_prob says), their SwiGLU outputs summed by those weights; Qwen3-MoE's q/k norms and a dense
/// layer (mlp_only_layers). Every position's logits over the paged pool in chunks; greedy tokens through the engine.
public sealed class MixtureOfExpertsTests
{
    public enum Family { Mixtral, Qwen3Moe, Qwen2Moe, GraniteMoe, GraniteMoeShared, Phimoe, Olmoe }

    public static TheoryData<Family> Families => new(Enum.GetValues<Family>());

    [Theory, MemberData(nameof(Families))]
    public void EveryPositionsLogitsMatchTheReference(Family family)
    {
        using var folder = new TempDirectory();
        var weights = Write(family, folder.Path);
        int[] prompt = [1, 17, 305, 42, 9, 77, 480, 3, 250, 11, 64, 199];
        ReferenceChecks.AssertEveryPositionMatches(folder.Path, prompt, [5, 7], Reference(family, weights, prompt), family.ToString());
    }

    [Theory, MemberData(nameof(Families))]
    public async Task GreedyTokensThroughTheEngineAreTheReferences(Family family)
    {
        using var folder = new TempDirectory();
        var weights = Write(family, folder.Path);
        int[][] prompts = [[1, 17, 305, 42, 9, 77], [1, 250, 11, 64]];
        await using var engine = await Execution.EngineTestHelpers.StartAsync("llama-gqa", o => o with { Model = folder.Path, BlockSize = 4 });
        // side by side: the two prompts' tokens share each step's experts
        var completions = await Task.WhenAll(prompts.Select((p, i) =>
            Execution.EngineTestHelpers.CollectAsync(engine, Execution.EngineTestHelpers.Greedy(p, 10, $"r{i}"))));
        for (var i = 0; i < prompts.Length; i++)
            Assert.Equal(ReferenceChecks.Greedy(tokens => Reference(family, weights, tokens), prompts[i], 10), completions[i].Tokens());
    }

    /// Grouped by expert (each expert's slots a contiguous run of rows), the experts' outputs come back to their tokens as
    /// transformers' loop adds them: each expert's rows times their weights, index_add_ expert after expert, in
    /// bfloat16, bit for bit.
    [Fact]
    public void GroupedExpertsAddUpAsTransformersLoopAddsThem()
    {
        const int tokens = 37, experts = 9, topK = 3, hidden = 24;
        var generator = new Generator(seed: 5);
        using var chosen = stack(Enumerable.Range(0, tokens).Select(_ => randperm(experts, generator: generator).narrow(0, 0, topK)).ToList());
        using var weights = rand([tokens, topK], generator: generator).to_type(ScalarType.BFloat16);
        using var x = randn([tokens, hidden], generator: generator).to_type(ScalarType.BFloat16);
        var matrices = Enumerable.Range(0, experts).Select(_ => randn([hidden, hidden], generator: generator).to_type(ScalarType.BFloat16)).ToArray();

        using var expected = zeros([tokens, hidden], ScalarType.BFloat16);
        using var one = 1.ToScalar();
        var picked = Enumerable.Range(0, experts).Select(expert =>
        {
            using var held = expert.ToScalar();
            return chosen.eq(held);
        }).ToArray();
        for (var expert = 0; expert < experts; expert++)
        {
            var pairs = picked[expert].nonzero();   // (token, slot) in token order
            if (pairs.shape[0] == 0) continue;
            var (rows, slots) = (pairs.select(1, 0), pairs.select(1, 1));
            expected.index_add_(0, rows, x.index_select(0, rows).matmul(matrices[expert]) * weights.index_select(0, rows).gather(1, slots.unsqueeze(1)), one);
        }

        var groups = ExpertGroups.Of(chosen, weights, experts);
        Assert.Equal(groups.OnHost.Select(group => group.Expert), Enumerable.Range(0, experts).Where(expert => picked[expert].any().item<bool>()));
        Assert.Equal(groups.OnHost.Select(group => group.Count), picked.Where(p => p.any().item<bool>()).Select(p => p.sum().item<long>()));
        Assert.Equal([experts + 1L], groups.Starts.shape);
        using var routed = x.index_select(0, groups.Tokens);
        using var actual = groups.Combine(groups.Run(group => routed.narrow(0, group.Start, group.Count).matmul(matrices[group.Expert])), x);
        Assert.True(actual.equal(expected).all().item<bool>(), "the grouped experts' sum differs from transformers' loop");

        // a step of no tokens routes none and gives none back
        var none = ExpertGroups.Of(chosen.narrow(0, 0, 0), weights.narrow(0, 0, 0), experts);
        Assert.Empty(none.OnHost);
        using var nothing = none.Combine(none.Run(_ => throw new InvalidOperationException("no expert runs")), x.narrow(0, 0, 0));
        Assert.Equal([0L, hidden], nothing.shape);
    }

    /// A step's floor (the weight bytes it must read, the benchmark's roofline) counts the experts its tokens are expected
    /// to pick under uniform routing: one token k of each layer's E experts (1 - (1 - k / E) of their bytes), many all.
    [Fact]
    public void AStepReadsTheExpertsItsTokensPick()
    {
        using var folder = new TempDirectory();
        Write(Family.Qwen3Moe, folder.Path);
        using var model = ModelLoader.Load(folder.Path, "float32", CPU);
        var shape = Shape(Family.Qwen3Moe);
        var experts = (shape.Layers - shape.Dense.Length) * shape.Experts * 3L * shape.Width * Hidden * sizeof(float);
        var unpicked = experts * (1 - (double)shape.TopK / shape.Experts);
        var (one, many) = (model.StepWeightBytes(1), model.StepWeightBytes(10000));
        Assert.Equal(unpicked, many - one - 9999L * Hidden * sizeof(float), 0);
    }

    [Fact]
    public void WhatAMixtureOfExpertsDoesNotTakeIsRefused()
    {
        using var folder = new TempDirectory();
        Write(Family.Mixtral, folder.Path);
        Assert.Contains("one device", Assert.Throws<ModelLoadException>(() => ModelLoader.Load(folder.Path, "float32", tensorParallelSize: 2)).Message);
        using var model = ModelLoader.Load(folder.Path, "float32");
        Assert.Contains("mixture-of-experts", Assert.Throws<ModelLoadException>(() =>
            model.LoadLoraAdapters([new Serving.Engine.Model.Lora.LoraAdapterSource("a", folder.Path)], maxRank: 8)).Message);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder.Path, "config.json")))!.AsObject();
        config["num_experts_per_tok"] = 5;
        File.WriteAllText(Path.Combine(folder.Path, "config.json"), config.ToJsonString());
        Assert.Contains("num_experts_per_tok", Assert.Throws<Serving.Engine.Config.ModelConfigException>(() =>
            Serving.Engine.Config.ModelConfig.Load(folder.Path)).Message);
        // OLMoE's clip_qkv (its released configs have none)
        using var olmoeFolder = new TempDirectory();
        Write(Family.Olmoe, olmoeFolder.Path);
        var olmoe = JsonNode.Parse(File.ReadAllText(Path.Combine(olmoeFolder.Path, "config.json")))!.AsObject();
        olmoe["clip_qkv"] = 8.0;
        File.WriteAllText(Path.Combine(olmoeFolder.Path, "config.json"), olmoe.ToJsonString());
        Assert.Contains("clip_qkv", Assert.Throws<Serving.Engine.Config.ModelConfigException>(() =>
            Serving.Engine.Config.ModelConfig.Load(olmoeFolder.Path)).Message);
    }

    /// Phi-3.5-MoE's longrope scales cos and sin by short_mscale; a long_mscale apart from it (transformers switches by the
    /// batch's longest position) and other than two experts per token (SparseMixer picks two) are refused.
    [Fact]
    public void PhimoeReadsItsMscaleAndRefusesWhatItCannotServe()
    {
        using var folder = new TempDirectory();
        Write(Family.Phimoe, folder.Path);
        var path = Path.Combine(folder.Path, "config.json");
        var original = File.ReadAllText(path);
        void Edit(Action<JsonObject> change)
        {
            var config = JsonNode.Parse(original)!.AsObject();
            change(config);
            File.WriteAllText(path, config.ToJsonString());
        }
        JsonObject LongRope(double shortScale, double longScale) => new()
        {
            ["type"] = "longrope", ["short_factor"] = new JsonArray([.. Enumerable.Range(0, HeadDim / 2).Select(_ => (JsonNode?)1.0)]),
            ["long_factor"] = new JsonArray([.. Enumerable.Range(0, HeadDim / 2).Select(_ => (JsonNode?)2.0)]),
            ["short_mscale"] = shortScale, ["long_mscale"] = longScale,
        };
        Edit(c => (c["rope_scaling"], c["original_max_position_embeddings"]) = (LongRope(1.25, 1.25), 64));
        Assert.Equal(1.25, Serving.Engine.Config.ModelConfig.Load(folder.Path).Rope.AttentionScaling);
        Edit(c => (c["rope_scaling"], c["original_max_position_embeddings"]) = (LongRope(1.25, 1.5), 64));
        Assert.Contains("long_mscale", Assert.Throws<Serving.Engine.Config.ModelConfigException>(() => Serving.Engine.Config.ModelConfig.Load(folder.Path)).Message);
        Edit(c => c["num_experts_per_tok"] = 3);
        Assert.Contains("num_experts_per_tok", Assert.Throws<Serving.Engine.Config.ModelConfigException>(() => Serving.Engine.Config.ModelConfig.Load(folder.Path)).Message);
    }

    /// The fused kernels compute a mixture's attention and norms, and in 16 bits its experts' products from groups
    /// counted on the device (expert_linear.cu), so its decode steps can be captured as CUDA graphs; a float32 model's
    /// experts are grouped on the host (cuBLAS's products), so its steps wait for it.
    [Theory, MemberData(nameof(Families))]
    public void InSixteenBitsTheirStepsNeverWaitForTheHost(Family family)
    {
        using var folder = new TempDirectory();
        Write(family, folder.Path);
        Assert.True(Serving.Engine.Config.ModelConfig.Load(folder.Path).FusedKernelsCompute);
        using (var model = ModelLoader.Load(folder.Path, "bfloat16", CPU)) Assert.False(model.StepWaitsForTheHost);
        using (var model = ModelLoader.Load(folder.Path, "float32", CPU)) Assert.True(model.StepWaitsForTheHost);
    }

    [Theory, MemberData(nameof(Families))]
    public void TheConfigWriterWritesWhatTheReaderReadsBack(Family family)
    {
        using var folder = new TempDirectory();
        Write(family, folder.Path);
        ReferenceChecks.AssertConfigRoundTrips(folder.Path);
    }

    const int Vocab = 512, Hidden = 64, Heads = 4, KVHeads = 2, HeadDim = 16;

    const int SharedWidth = 40;
    /// GraniteMoE's multipliers (Granite's).
    const double EmbeddingMultiplier = 3.0, AttentionMultiplier = 0.2, ResidualMultiplier = 0.5, LogitsScaling = 2.5;
    static bool IsGranite(Family family) => family is Family.GraniteMoe or Family.GraniteMoeShared;
    /// phimoe's router_jitter_noise, wide enough here that the softmax of each pick takes in other experts.
    const double SparseMixerJitter = 0.3;

    static (int Layers, int Experts, int TopK, int Width, int DenseWidth, bool Normalize, int[] Dense) Shape(Family family) => family switch
    {
        Family.Mixtral => (2, 4, 2, 32, 32, true, []),
        Family.Qwen3Moe => (3, 6, 3, 24, 48, false, [1]),
        Family.GraniteMoe or Family.GraniteMoeShared => (2, 5, 2, 24, 24, true, []),   // the softmax over the top k sums to 1
        Family.Phimoe => (2, 5, 2, 24, 24, false, []),
        Family.Olmoe => (2, 6, 3, 24, 24, false, []),
        _ => (2, 5, 2, 24, 48, true, []),
    };

    /// config.json, random weights and the llama-gqa fixture's tokenizer.
    internal static Dictionary<string, Tensor> Write(Family family, string folder)
    {
        var shape = Shape(family);
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(family switch
            {
                Family.Mixtral => "MixtralForCausalLM",
                Family.Qwen3Moe => "Qwen3MoeForCausalLM",
                Family.GraniteMoe => "GraniteMoeForCausalLM",
                Family.GraniteMoeShared => "GraniteMoeSharedForCausalLM",
                Family.Phimoe => "PhimoeForCausalLM",
                Family.Olmoe => "OlmoeForCausalLM",
                _ => "Qwen2MoeForCausalLM",
            }),
            ["model_type"] = family switch
            {
                Family.Mixtral => "mixtral",
                Family.Qwen3Moe => "qwen3_moe",
                Family.GraniteMoe => "granitemoe",
                Family.GraniteMoeShared => "granitemoeshared",
                Family.Phimoe => "phimoe",
                Family.Olmoe => "olmoe",
                _ => "qwen2_moe",
            },
            ["hidden_size"] = Hidden, ["num_hidden_layers"] = shape.Layers, ["num_attention_heads"] = Heads,
            ["num_key_value_heads"] = KVHeads, ["vocab_size"] = Vocab, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 1000000.0,
            ["max_position_embeddings"] = 256, ["hidden_act"] = "silu", ["tie_word_embeddings"] = false, ["torch_dtype"] = "float32",
            ["bos_token_id"] = 1, ["eos_token_id"] = 2, ["num_experts_per_tok"] = shape.TopK,
        };
        if (IsGranite(family))
        {
            config["intermediate_size"] = shape.Width;
            config["num_local_experts"] = shape.Experts;
            (config["embedding_multiplier"], config["attention_multiplier"]) = (EmbeddingMultiplier, AttentionMultiplier);
            (config["residual_multiplier"], config["logits_scaling"]) = (ResidualMultiplier, LogitsScaling);
            if (family == Family.GraniteMoeShared) config["shared_intermediate_size"] = SharedWidth;
        }
        else if (family == Family.Olmoe)
        {
            // the experts of intermediate_size; norm_topk_prob left out: off
            config["intermediate_size"] = shape.Width;
            config["num_experts"] = shape.Experts;
        }
        else if (family == Family.Phimoe)
        {
            config["intermediate_size"] = shape.Width;
            config["num_local_experts"] = shape.Experts;
            config["router_jitter_noise"] = SparseMixerJitter;
            (config["attention_bias"], config["lm_head_bias"]) = (true, true);
        }
        else if (family == Family.Mixtral)
        {
            config["intermediate_size"] = shape.Width;
            config["num_local_experts"] = shape.Experts;
            config["sliding_window"] = null;
        }
        else
        {
            if (family == Family.Qwen2Moe) config["shared_expert_intermediate_size"] = SharedWidth;
            else config["head_dim"] = HeadDim;
            config["intermediate_size"] = shape.DenseWidth;
            config["moe_intermediate_size"] = shape.Width;
            config["num_experts"] = shape.Experts;
            config["norm_topk_prob"] = shape.Normalize;
            config["mlp_only_layers"] = new JsonArray([.. shape.Dense.Select(l => (JsonNode)l)]);
            config["decoder_sparse_step"] = 1;
        }
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        ReferenceChecks.CopyTokenizer(folder);

        var generator = new Generator(seed: (ulong)family + 11);
        Tensor Random(params long[] dims) => randn(dims, generator: generator) * 0.15f;
        Tensor Norm(long width) => 1 + randn([width], generator: generator) * 0.1f;
        var weights = new Dictionary<string, Tensor>
        {
            ["model.embed_tokens.weight"] = Random(Vocab, Hidden), ["model.norm.weight"] = Norm(Hidden), ["lm_head.weight"] = Random(Vocab, Hidden),
        };
        for (var i = 0; i < shape.Layers; i++)
        {
            var p = $"model.layers.{i}.";
            weights[p + "self_attn.q_proj.weight"] = Random(Heads * HeadDim, Hidden);
            weights[p + "self_attn.k_proj.weight"] = Random(KVHeads * HeadDim, Hidden);
            weights[p + "self_attn.v_proj.weight"] = Random(KVHeads * HeadDim, Hidden);
            weights[p + "self_attn.o_proj.weight"] = Random(Hidden, Heads * HeadDim);
            weights[p + "input_layernorm.weight"] = Norm(Hidden);
            weights[p + "post_attention_layernorm.weight"] = Norm(Hidden);
            if (family == Family.Phimoe)
            {
                // LayerNorms with biases, biases on every attention projection
                (weights[p + "input_layernorm.bias"], weights[p + "post_attention_layernorm.bias"]) = (Random(Hidden), Random(Hidden));
                foreach (var (name, rows) in new[] { ("q_proj", Heads * HeadDim), ("k_proj", KVHeads * HeadDim), ("v_proj", KVHeads * HeadDim), ("o_proj", Hidden) })
                    weights[$"{p}self_attn.{name}.bias"] = Random(rows);
            }
            if (family == Family.Qwen3Moe)
            {
                weights[p + "self_attn.q_norm.weight"] = Norm(HeadDim);
                weights[p + "self_attn.k_norm.weight"] = Norm(HeadDim);
            }
            if (family == Family.Olmoe)   // over the whole projections
            {
                weights[p + "self_attn.q_norm.weight"] = Norm(Heads * HeadDim);
                weights[p + "self_attn.k_norm.weight"] = Norm(KVHeads * HeadDim);
            }
            if (family == Family.Qwen2Moe)
            {
                weights[p + "self_attn.q_proj.bias"] = Random(Heads * HeadDim);
                weights[p + "self_attn.k_proj.bias"] = Random(KVHeads * HeadDim);
                weights[p + "self_attn.v_proj.bias"] = Random(KVHeads * HeadDim);
                weights[p + "mlp.shared_expert.gate_proj.weight"] = Random(SharedWidth, Hidden);
                weights[p + "mlp.shared_expert.up_proj.weight"] = Random(SharedWidth, Hidden);
                weights[p + "mlp.shared_expert.down_proj.weight"] = Random(Hidden, SharedWidth);
                weights[p + "mlp.shared_expert_gate.weight"] = Random(1, Hidden) * 4;
            }
            if (shape.Dense.Contains(i))
            {
                weights[p + "mlp.gate_proj.weight"] = Random(shape.DenseWidth, Hidden);
                weights[p + "mlp.up_proj.weight"] = Random(shape.DenseWidth, Hidden);
                weights[p + "mlp.down_proj.weight"] = Random(Hidden, shape.DenseWidth);
                continue;
            }
            if (IsGranite(family))
            {
                // the experts stacked: gate and up rows of each in one (experts, 2F, hidden) tensor, down in (experts, hidden, F)
                weights[p + "block_sparse_moe.router.layer.weight"] = Random(shape.Experts, Hidden) * 4;
                weights[p + "block_sparse_moe.input_linear.weight"] = Random(shape.Experts, 2 * shape.Width, Hidden);
                weights[p + "block_sparse_moe.output_linear.weight"] = Random(shape.Experts, Hidden, shape.Width);
                if (family == Family.GraniteMoeShared)
                {
                    weights[p + "shared_mlp.input_linear.weight"] = Random(2 * SharedWidth, Hidden);
                    weights[p + "shared_mlp.output_linear.weight"] = Random(Hidden, SharedWidth);
                }
                continue;
            }
            var moe = family is Family.Mixtral or Family.Phimoe ? p + "block_sparse_moe." : p + "mlp.";
            weights[moe + "gate.weight"] = Random(shape.Experts, Hidden) * 4;   // a router with opinions
            for (var e = 0; e < shape.Experts; e++)
            {
                var (gate, up, down) = family is Family.Mixtral or Family.Phimoe ? ("w1", "w3", "w2") : ("gate_proj", "up_proj", "down_proj");
                weights[$"{moe}experts.{e}.{gate}.weight"] = Random(shape.Width, Hidden);
                weights[$"{moe}experts.{e}.{up}.weight"] = Random(shape.Width, Hidden);
                weights[$"{moe}experts.{e}.{down}.weight"] = Random(Hidden, shape.Width);
            }
        }
        if (family == Family.Phimoe) (weights["model.norm.bias"], weights["lm_head.bias"]) = (Random(Hidden), Random(Vocab));
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), weights);
        return weights;
    }

    /// transformers' forward in float64: logits of every position of tokens.
    internal static double[][] Reference(Family family, Dictionary<string, Tensor> weights, int[] tokens)
    {
        using var scope = NewDisposeScope();
        var shape = Shape(family);
        Tensor W(string name) => weights[name].to_type(ScalarType.Float64);
        var phimoe = family == Family.Phimoe;
        // phimoe's norms are nn.LayerNorm (eps its rms_norm_eps, 1e-6 here) with a bias
        Tensor Normed(Tensor x, string name) => !phimoe ? Norm(x, W(name + ".weight"))
            : (x - x.mean([-1], keepdim: true)) * (x.var(-1, unbiased: false, keepdim: true) + 1e-6).rsqrt() * W(name + ".weight") + W(name + ".bias");
        Tensor Norm(Tensor x, Tensor w) => x * (x.square().mean([-1], keepdim: true) + 1e-6).rsqrt() * w;
        Tensor SwiGlu(Tensor x, Tensor gate, Tensor up, Tensor down) =>
            (nn.functional.silu(x.matmul(gate.t())) * x.matmul(up.t())).matmul(down.t());
        var t = tokens.Length;
        var granite = IsGranite(family);
        var h = W("model.embed_tokens.weight").index_select(0, tensor(tokens.Select(x => (long)x).ToArray())) * (granite ? EmbeddingMultiplier : 1.0);
        var residual = granite ? ResidualMultiplier : 1.0;
        var rope = ReferenceChecks.HalfRope(t, HeadDim, 1000000.0);
        var causal = ReferenceChecks.CausalMask(t);
        for (var i = 0; i < shape.Layers; i++)
        {
            var p = $"model.layers.{i}.";
            var x = Normed(h, p + "input_layernorm");
            Tensor Projection(string name) => family is Family.Qwen2Moe or Family.Phimoe
                ? x.matmul(W(p + $"self_attn.{name}.weight").t()) + W(p + $"self_attn.{name}.bias")
                : x.matmul(W(p + $"self_attn.{name}.weight").t());
            var (qProjected, kProjected) = (Projection("q_proj"), Projection("k_proj"));
            if (family == Family.Olmoe)
                (qProjected, kProjected) = (Norm(qProjected, W(p + "self_attn.q_norm.weight")), Norm(kProjected, W(p + "self_attn.k_norm.weight")));
            var q = qProjected.view(t, Heads, HeadDim);
            var k = kProjected.view(t, KVHeads, HeadDim);
            var v = Projection("v_proj").view(t, KVHeads, HeadDim);
            if (family == Family.Qwen3Moe)
            {
                q = Norm(q, W(p + "self_attn.q_norm.weight"));
                k = Norm(k, W(p + "self_attn.k_norm.weight"));
            }
            (q, k) = (ReferenceChecks.RotateHalf(q, rope), ReferenceChecks.RotateHalf(k, rope));
            h = h + ReferenceChecks.Attend(q, k, v, granite ? AttentionMultiplier : 1 / Math.Sqrt(HeadDim), causal)
                .matmul(W(p + "self_attn.o_proj.weight").t()) * residual + (phimoe ? W(p + "self_attn.o_proj.bias") : zeros(1, ScalarType.Float64));
            x = Normed(h, p + "post_attention_layernorm");
            if (granite)
            {
                h = h + GraniteExperts(x, p) * residual;
                continue;
            }
            if (shape.Dense.Contains(i))
            {
                h = h + SwiGlu(x, W(p + "mlp.gate_proj.weight"), W(p + "mlp.up_proj.weight"), W(p + "mlp.down_proj.weight"));
                continue;
            }
            var moe = family is Family.Mixtral or Family.Phimoe ? p + "block_sparse_moe." : p + "mlp.";
            var (gateName, upName, downName) = family is Family.Mixtral or Family.Phimoe ? ("w1", "w3", "w2") : ("gate_proj", "up_proj", "down_proj");
            var probabilities = x.matmul(W(moe + "gate.weight").t()).softmax(-1);      // (t, experts)
            var (top, chosen) = phimoe ? SparseMixer(x.matmul(W(moe + "gate.weight").t())) : probabilities.topk(shape.TopK, dim: -1);
            if (shape.Normalize) top = top / top.sum(-1, keepdim: true);
            var output = zeros_like(x);
            for (var token = 0; token < t; token++)
                for (var slot = 0; slot < shape.TopK; slot++)
                {
                    var e = chosen[token, slot].item<long>();
                    var row = x.narrow(0, token, 1);
                    output[token] += (SwiGlu(row, W($"{moe}experts.{e}.{gateName}.weight"), W($"{moe}experts.{e}.{upName}.weight"),
                        W($"{moe}experts.{e}.{downName}.weight")) * top[token, slot]).squeeze(0);
                }
            if (family == Family.Qwen2Moe)
                output = output + nn.functional.sigmoid(x.matmul(W(p + "mlp.shared_expert_gate.weight").t()))
                    * SwiGlu(x, W(p + "mlp.shared_expert.gate_proj.weight"), W(p + "mlp.shared_expert.up_proj.weight"), W(p + "mlp.shared_expert.down_proj.weight"));
            h = h + output;
        }
        var logits = Normed(h, "model.norm").matmul(W("lm_head.weight").t()) / (granite ? LogitsScaling : 1.0);
        if (phimoe) logits = logits + W("lm_head.bias");
        return ReferenceChecks.Rows(logits);

        // phimoe's SparseMixer at inference, token by token: the top expert, weighed by the softmax over the logits
        // within 2 x jitter of it relative to max(|logit|, top); then likewise the top of the others
        (Tensor Weights, Tensor Chosen) SparseMixer(Tensor scores)
        {
            var (weightsOut, chosenOut) = (zeros(t, 2, ScalarType.Float64), zeros(t, 2, ScalarType.Int64));
            for (var token = 0; token < t; token++)
            {
                var row = scores[token].data<double>().ToArray();
                var excluded = -1;
                for (var pick = 0; pick < 2; pick++)
                {
                    var best = Enumerable.Range(0, row.Length).Where(e => e != excluded).MaxBy(e => row[e]);
                    var near = Enumerable.Range(0, row.Length).Where(e => e != excluded
                        && (row[best] - row[e]) / Math.Max(Math.Abs(row[e]), row[best]) <= 2 * SparseMixerJitter).ToArray();
                    var sum = near.Sum(e => Math.Exp(row[e] - row[best]));
                    (weightsOut[token, pick], chosenOut[token, pick]) = (1.0 / sum, (long)best);
                    excluded = best;
                }
            }
            return (weightsOut, chosenOut);
        }

        // GraniteMoE's: the top-k router logits weighed by their own softmax; the experts' tensors stacked; the shared MLP
        // (gate and up in one tensor) added as it is
        Tensor GraniteExperts(Tensor x, string p)
        {
            var (topLogits, chosen) = x.matmul(W(p + "block_sparse_moe.router.layer.weight").t()).topk(shape.TopK, dim: -1);
            var top = topLogits.softmax(-1);
            var (gateUp, down) = (W(p + "block_sparse_moe.input_linear.weight"), W(p + "block_sparse_moe.output_linear.weight"));
            var output = zeros_like(x);
            for (var token = 0; token < t; token++)
                for (var slot = 0; slot < shape.TopK; slot++)
                {
                    var e = chosen[token, slot].item<long>();
                    output[token] += (SwiGlu(x.narrow(0, token, 1), gateUp[e].narrow(0, 0, shape.Width), gateUp[e].narrow(0, shape.Width, shape.Width),
                        down[e]) * top[token, slot]).squeeze(0);
                }
            if (family != Family.GraniteMoeShared) return output;
            var shared = W(p + "shared_mlp.input_linear.weight");
            return output + SwiGlu(x, shared.narrow(0, 0, SharedWidth), shared.narrow(0, SharedWidth, SharedWidth), W(p + "shared_mlp.output_linear.weight"));
        }
    }
}

/// The same checkpoints on CUDA (the fused backend without CUDA graphs): greedy tokens as the float64 reference gives
/// them, and the fused backend's logits against the plain one's.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class MixtureOfExpertsGpuTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [GpuTheory]
    [InlineData(MixtureOfExpertsTests.Family.Mixtral)]
    [InlineData(MixtureOfExpertsTests.Family.Qwen3Moe)]
    [InlineData(MixtureOfExpertsTests.Family.Qwen2Moe)]
    [InlineData(MixtureOfExpertsTests.Family.GraniteMoeShared)]
    public void TheFusedBackendComputesThemAsThePlainOne(MixtureOfExpertsTests.Family family) =>
        ReferenceChecks.AssertFusedAgreesWithPlain(folder => MixtureOfExpertsTests.Write(family, folder), output.WriteLine);

    [GpuTheory]
    [InlineData(MixtureOfExpertsTests.Family.Mixtral)]
    [InlineData(MixtureOfExpertsTests.Family.Qwen3Moe)]
    public Task OnCudaTheyAnswerAsTheReference(MixtureOfExpertsTests.Family family) =>
        ReferenceChecks.AssertEngineGreedyIsTheReferencesAsync(folder => MixtureOfExpertsTests.Write(family, folder), (weights, tokens) => MixtureOfExpertsTests.Reference(family, weights, tokens), [1, 17, 305, 42, 9, 77], 10, device: "cuda");

    /// A mixture's decode steps captured as CUDA graphs (its experts' groups counted on the device) replay the eager
    /// steps' logits and K/V bit for bit, padded batches included.
    [GpuTheory]
    [InlineData(MixtureOfExpertsTests.Family.Mixtral)]
    [InlineData(MixtureOfExpertsTests.Family.Qwen3Moe)]
    [InlineData(MixtureOfExpertsTests.Family.Qwen2Moe)]
    public void TheirDecodeStepsReplayAsCapturedGraphs(MixtureOfExpertsTests.Family family)
    {
        using var folder = new TempDirectory();
        MixtureOfExpertsTests.Write(family, folder.Path);
        using var model = ModelLoader.Load(folder.Path, "bfloat16", CUDA);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        Assert.True(model.CanCaptureGraphs(cache.Dtype));
        Model.Backends.CudaBackendTests.AssertReplaysAreEager(model, cache, [[5, 40, 17], [33], [1, 70, 65, 9, 128]], output.WriteLine);
    }
}
