using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Architectures;

/// The families' tiny checkpoints (Write: config.json, tokenizer, random weights) and their float64 forward
/// (Reference: every position's logits as transformers computes them), which the tests here and on the GPU use.
public sealed partial class LlamaVariantsTests
{
    /// Cohere2's sliding window, shorter than the prompts: its layers 0-2 slide, layer 3 is full and has no rope.
    const int Cohere2Window = 3;
    /// OLMo 3's, likewise: its layers 0-2 slide and turn by the plain rotary embedding, layer 3 turns by the scaled one.
    const int Olmo3Window = 3;
    const double Olmo3RopeFactor = 4.0;
    /// EXAONE 4.0's, likewise: layers 0-2 slide with rope, layer 3 is full without it.
    const int Exaone4Window = 3;
    /// Hunyuan's dynamic-alpha rope (1000 in the 7B): the base is theta x alpha^(d / (d - 2)).
    const double HunyuanAlpha = 5.0;
    /// Mistral's (7B v0.1's sliding_window, small): every layer slides, windows crossing the chunks and the pool's blocks.
    const int MistralWindow = 4;


    const int Vocab = 512, Hidden = 64, Inter = 96, Layers = 4, Heads = 4, KVHeads = 2, HeadDim = 16;
    const double EmbeddingMultiplier = 3.0, AttentionMultiplier = 0.2, ResidualMultiplier = 0.5, LogitsScaling = 2.5;

    internal static Dictionary<string, Tensor> Write(Family family, string folder)
    {
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(family switch
            {
                Family.Granite => "GraniteForCausalLM",
                Family.SmolLM3 => "SmolLM3ForCausalLM",
                Family.Olmo2 => "Olmo2ForCausalLM",
                Family.Olmo3 => "Olmo3ForCausalLM",
                Family.Exaone4 => "Exaone4ForCausalLM",
                Family.Exaone => "ExaoneForCausalLM",
                Family.SeedOss => "SeedOssForCausalLM",
                Family.Hunyuan => "HunYuanDenseV1ForCausalLM",
                Family.Apertus => "ApertusForCausalLM",
                Family.Starcoder2 => "Starcoder2ForCausalLM",
                Family.Nemotron => "NemotronForCausalLM",
                Family.Arcee => "ArceeForCausalLM",
                Family.Glm4 => "Glm4ForCausalLM",
                Family.Glm => "GlmForCausalLM",
                Family.Cohere or Family.CommandRPlus => "CohereForCausalLM",
                Family.Cohere2 => "Cohere2ForCausalLM",
                _ => "MistralForCausalLM",
            }),
            ["model_type"] = family switch
            {
                Family.Granite => "granite",
                Family.SmolLM3 => "smollm3",
                Family.Olmo2 => "olmo2",
                Family.Olmo3 => "olmo3",
                Family.Exaone4 => "exaone4",
                Family.SeedOss => "seed_oss",
                Family.Hunyuan => "hunyuan_v1_dense",
                Family.Apertus => "apertus",
                Family.Starcoder2 => "starcoder2",
                Family.Nemotron => "nemotron",
                Family.Arcee => "arcee",
                Family.Exaone => "exaone",
                Family.Glm4 => "glm4",
                Family.Glm => "glm",
                Family.Cohere or Family.CommandRPlus => "cohere",
                Family.Cohere2 => "cohere2",
                _ => "mistral",
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
        else if (family == Family.Glm)
        {
            config["tie_word_embeddings"] = true;   // attention_bias and partial_rotary_factor left out: on, and 0.5, by default
            config["head_dim"] = HeadDim;           // GlmConfig's is 128
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
        else if (family == Family.Hunyuan)
        {
            config["tie_word_embeddings"] = true;
            config["use_qk_norm"] = true;
            config["use_cla"] = false;
            config["rope_scaling"] = new JsonObject { ["type"] = "dynamic", ["alpha"] = HunyuanAlpha };
        }
        else if (family == Family.Nemotron)
        {
            config["tie_word_embeddings"] = true;
            config["hidden_act"] = "relu2";
            config["norm_eps"] = 1e-5;
            (config["attention_bias"], config["mlp_bias"]) = (true, true);   // partial_rotary_factor left out: 0.5 by default
        }
        else if (family == Family.Arcee)
        {
            config["tie_word_embeddings"] = true;
            config.Remove("hidden_act");   // ArceeConfig's relu2 by default
            (config["attention_bias"], config["mlp_bias"]) = (true, true);
        }
        else if (family == Family.Exaone)
        {
            // ExaoneConfig's own names for three shared fields
            config["tie_word_embeddings"] = true;
            foreach (var (shared, theirs) in new[] { ("num_hidden_layers", "num_layers"), ("rms_norm_eps", "layer_norm_epsilon"), ("hidden_act", "activation_function") })
            {
                config[theirs] = config[shared]!.DeepClone();
                config.Remove(shared);
            }
        }
        else if (family == Family.Starcoder2)
        {
            // use_bias and tie_word_embeddings left out: on by default
            config["hidden_act"] = "gelu_pytorch_tanh";
            config["norm_epsilon"] = 1e-5;
            config["sliding_window"] = MistralWindow;
        }
        else if (family == Family.Apertus)
        {
            config["tie_word_embeddings"] = true;
            config["hidden_act"] = "xielu";
            config["rope_scaling"] = new JsonObject { ["rope_type"] = "default" };   // the tiny model's (ApertusConfig's is llama3)
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
            if (family is Family.SeedOss or Family.Starcoder2 or Family.Nemotron or Family.Arcee)
            {
                weights[p + "self_attn.q_proj.bias"] = Random(Heads * HeadDim);
                weights[p + "self_attn.k_proj.bias"] = Random(KVHeads * HeadDim);
                weights[p + "self_attn.v_proj.bias"] = Random(KVHeads * HeadDim);
                weights[p + "self_attn.o_proj.bias"] = Random(Hidden);
            }
            if (family is Family.Glm4 or Family.Glm)
            {
                weights[p + "mlp.gate_up_proj.weight"] = Random(2 * Inter, Hidden);
                weights[p + "self_attn.q_proj.bias"] = Random(Heads * HeadDim);
                weights[p + "self_attn.k_proj.bias"] = Random(KVHeads * HeadDim);
                weights[p + "self_attn.v_proj.bias"] = Random(KVHeads * HeadDim);
                if (family == Family.Glm4)
                {
                    weights[p + "post_self_attn_layernorm.weight"] = Norm();
                    weights[p + "post_mlp_layernorm.weight"] = Norm();
                }
            }
            else if (family is Family.Starcoder2 or Family.Nemotron)
            {
                // no gate, biases; LayerNorms with biases (Nemotron's weights stored as their offsets from 1)
                var (up, down) = family == Family.Starcoder2 ? ("c_fc", "c_proj") : ("up_proj", "down_proj");
                weights[$"{p}mlp.{up}.weight"] = Random(Inter, Hidden);
                weights[$"{p}mlp.{up}.bias"] = Random(Inter);
                weights[$"{p}mlp.{down}.weight"] = Random(Hidden, Inter);
                weights[$"{p}mlp.{down}.bias"] = Random(Hidden);
                foreach (var norm in new[] { "input_layernorm", "post_attention_layernorm" })
                    (weights[$"{p}{norm}.weight"], weights[$"{p}{norm}.bias"]) = (family == Family.Nemotron ? Norm() - 1 : Norm(), Random(Hidden));
            }
            else if (family == Family.Arcee)
            {
                // no gate, biases; Llama's RMSNorms
                weights[p + "mlp.up_proj.weight"] = Random(Inter, Hidden);
                weights[p + "mlp.up_proj.bias"] = Random(Inter);
                weights[p + "mlp.down_proj.bias"] = Random(Hidden);
            }
            else if (family == Family.Apertus)
            {
                // no gate; xIELU's parameters near transformers' initial ones (alpha_p 0.8, alpha_n 0.3 after softplus),
                // beta and eps 0-dim as Apertus's checkpoints store them
                weights[p + "mlp.up_proj.weight"] = Random(Inter, Hidden);
                weights[p + "mlp.act_fn.alpha_p"] = (Math.Log(Math.Exp(0.8) - 1) + randn([1], generator: generator) * 0.3f).to_type(ScalarType.Float32);
                weights[p + "mlp.act_fn.alpha_n"] = (Math.Log(Math.Exp(0.3) - 1) + randn([1], generator: generator) * 0.3f).to_type(ScalarType.Float32);
                weights[p + "mlp.act_fn.beta"] = (0.5 + randn([], generator: generator) * 0.1f).to_type(ScalarType.Float32);
                weights[p + "mlp.act_fn.eps"] = tensor(-1e-6f);
                weights[p + "self_attn.q_norm.weight"] = 1 + randn([HeadDim], generator: generator) * 0.2f;
                weights[p + "self_attn.k_norm.weight"] = 1 + randn([HeadDim], generator: generator) * 0.2f;
                weights[p + "attention_layernorm.weight"] = Norm();
                weights[p + "feedforward_layernorm.weight"] = Norm();
            }
            else
            {
                weights[p + "mlp.gate_proj.weight"] = Random(Inter, Hidden);
                weights[p + "mlp.up_proj.weight"] = Random(Inter, Hidden);
            }
            if (family is not (Family.Starcoder2 or Family.Nemotron)) weights[p + "mlp.down_proj.weight"] = Random(Hidden, Inter);
            if (family is not (Family.Cohere or Family.Cohere2 or Family.CommandRPlus or Family.Apertus or Family.Starcoder2 or Family.Nemotron))
                weights[p + "post_attention_layernorm.weight"] = Norm();
            if (family == Family.CommandRPlus)
            {
                // a weight per head, far enough apart that one head's weight on another would show
                weights[p + "self_attn.q_norm.weight"] = 1 + randn([Heads, HeadDim], generator: generator) * 0.3f;
                weights[p + "self_attn.k_norm.weight"] = 1 + randn([KVHeads, HeadDim], generator: generator) * 0.3f;
            }
            if (family == Family.Hunyuan)
            {
                // far from 1 and from one another, so a norm before the rotary embedding would show
                weights[p + "self_attn.query_layernorm.weight"] = 1 + randn([HeadDim], generator: generator) * 0.3f;
                weights[p + "self_attn.key_layernorm.weight"] = 1 + randn([HeadDim], generator: generator) * 0.3f;
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
            else if (family is not (Family.Apertus or Family.Starcoder2 or Family.Nemotron)) weights[p + "input_layernorm.weight"] = Norm();
        }
        if (family == Family.Nemotron) weights["model.norm.weight"] = Norm() - 1;
        if (family is Family.Starcoder2 or Family.Nemotron) weights["model.norm.bias"] = Random(Hidden);
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), family == Family.Exaone ? weights.ToDictionary(w => ExaoneName(w.Key), w => w.Value) : weights);
        return weights;
    }

    /// A Llama tensor name as EXAONE 3.5's checkpoints (GPT-2's names) spell it.
    static string ExaoneName(string name) => name
        .Replace("model.embed_tokens.", "transformer.wte.").Replace("model.norm.", "transformer.ln_f.").Replace("model.layers.", "transformer.h.")
        .Replace(".input_layernorm.", ".ln_1.").Replace(".post_attention_layernorm.", ".ln_2.")
        .Replace(".self_attn.o_proj.", ".attn.attention.out_proj.").Replace(".self_attn.", ".attn.attention.")
        .Replace(".mlp.gate_proj.", ".mlp.c_fc_0.").Replace(".mlp.up_proj.", ".mlp.c_fc_1.").Replace(".mlp.down_proj.", ".mlp.c_proj.");

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
        var nemotron = family == Family.Nemotron;
        // starcoder2's nn.LayerNorm: about the mean, a weight and a bias; Nemotron's LayerNorm1P weighs by 1 + weight
        Tensor LayerNorm(Tensor x, string name)
        {
            var centered = x - x.mean([-1], keepdim: true);
            return centered * (centered.square().mean([-1], keepdim: true) + 1e-5).rsqrt() * (W(name + ".weight") + (nemotron ? 1.0 : 0.0))
                + W(name + ".bias");
        }
        var starcoder = family is Family.Starcoder2 or Family.Nemotron;   // LayerNorms with biases, an ungated MLP with biases
        var t = tokens.Length;
        var h = W("model.embed_tokens.weight").index_select(0, tensor(tokens.Select(x => (long)x).ToArray())) * (granite ? EmbeddingMultiplier : 1.0);
        var rope = ReferenceChecks.HalfRope(t, HeadDim, 10000.0);
        var scaledRope = ReferenceChecks.HalfRope(t, HeadDim, 10000.0, Olmo3RopeFactor);   // linear: positions / factor
        var alphaRope = ReferenceChecks.HalfRope(t, HeadDim, 10000.0 * Math.Pow(HunyuanAlpha, HeadDim / (HeadDim - 2.0)));
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
        var halfRope = ReferenceChecks.HalfRope(t, Turned, 10000.0);
        Tensor RotateFirstHalf(Tensor y) =>
            cat([ReferenceChecks.RotateHalf(y.narrow(-1, 0, Turned), halfRope), y.narrow(-1, Turned, HeadDim - Turned)], -1);
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
            var apertus = family == Family.Apertus;   // its pre-norms' own names; q/k norms per head; xIELU without a gate
            var x = olmo ? h : starcoder ? LayerNorm(h, p + "input_layernorm") : Norm(h, W(p + (apertus ? "attention_layernorm.weight" : "input_layernorm.weight")));
            var glm = family is Family.Glm4 or Family.Glm;
            var sandwich = family == Family.Glm4;   // norms on the attention and MLP outputs too
            var seed = family is Family.SeedOss or Family.Starcoder2 or Family.Nemotron or Family.Arcee;   // biases on q, k, v and o
            Tensor Bias(string name) => glm || seed ? W(p + $"self_attn.{name}.bias") : zeros(1, ScalarType.Float64);
            var q = x.matmul(W(p + "self_attn.q_proj.weight").t()) + Bias("q_proj");
            var k = x.matmul(W(p + "self_attn.k_proj.weight").t()) + Bias("k_proj");
            if (olmo && family != Family.Exaone4) (q, k) = (Norm(q, W(p + "self_attn.q_norm.weight")), Norm(k, W(p + "self_attn.k_norm.weight")));
            (q, k) = (q.view(t, Heads, HeadDim), k.view(t, KVHeads, HeadDim));
            if (family is Family.Exaone4 or Family.Apertus) (q, k) = (Norm(q, W(p + "self_attn.q_norm.weight")), Norm(k, W(p + "self_attn.k_norm.weight")));   // each head
            if (family == Family.CommandRPlus) (q, k) = (Norm(q, W(p + "self_attn.q_norm.weight")), Norm(k, W(p + "self_attn.k_norm.weight")));   // (heads, head_dim) weights
            var v = (x.matmul(W(p + "self_attn.v_proj.weight").t()) + Bias("v_proj")).view(t, KVHeads, HeadDim);
            if (glm) (q, k) = (RotatePairs(q), RotatePairs(k));
            else if (cohere) (q, k) = cohere2Full(i) ? (q, k) : (RotateAllPairs(q), RotateAllPairs(k));
            else if (olmo3Full(i)) (q, k) = (ReferenceChecks.RotateHalf(q, scaledRope), ReferenceChecks.RotateHalf(k, scaledRope));
            else if (nemotron)   // the first half of each head in halves, frequencies of that half
                (q, k) = (RotateFirstHalf(q), RotateFirstHalf(k));
            else if (family == Family.Hunyuan)   // each head normed after the rotary embedding
                (q, k) = (Norm(ReferenceChecks.RotateHalf(q, alphaRope), W(p + "self_attn.query_layernorm.weight")),
                    Norm(ReferenceChecks.RotateHalf(k, alphaRope), W(p + "self_attn.key_layernorm.weight")));
            else if (family is not (Family.SmolLM3 or Family.Exaone4) || i != 3) (q, k) = (ReferenceChecks.RotateHalf(q, rope), ReferenceChecks.RotateHalf(k, rope));   // smollm3: layer 3 has no rope
            int? window = family == Family.Cohere2 && !cohere2Full(i) ? Cohere2Window : family is Family.Mistral or Family.Starcoder2 ? MistralWindow
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
                : sandwich ? Norm(output, W(p + "post_self_attn_layernorm.weight")) : output * residual);
            x = olmo ? h : Norm(h, W(p + (apertus ? "feedforward_layernorm.weight" : "post_attention_layernorm.weight")));
            if (starcoder)
            {
                var normed = LayerNorm(h, p + "post_attention_layernorm");
                var (upName, downName) = nemotron ? ("up_proj", "down_proj") : ("c_fc", "c_proj");
                var fc = normed.matmul(W($"{p}mlp.{upName}.weight").t()) + W($"{p}mlp.{upName}.bias");
                var activated = nemotron ? fc.relu().square() : fc.gelu(TorchSharp.Modules.GELU.Approximate.tanh);
                h = h + activated.matmul(W($"{p}mlp.{downName}.weight").t()) + W($"{p}mlp.{downName}.bias");
                continue;
            }
            if (family == Family.Arcee)   // Nemotron's MLP after Llama's RMSNorm
            {
                var fc = x.matmul(W(p + "mlp.up_proj.weight").t()) + W(p + "mlp.up_proj.bias");
                h = h + fc.relu().square().matmul(W(p + "mlp.down_proj.weight").t()) + W(p + "mlp.down_proj.bias");
                continue;
            }
            if (apertus)
            {
                h = h + Xielu(x.matmul(W(p + "mlp.up_proj.weight").t()), p).matmul(W(p + "mlp.down_proj.weight").t());
                continue;
            }
            var (gate, up) = glm
                ? (W(p + "mlp.gate_up_proj.weight").narrow(0, 0, Inter), W(p + "mlp.gate_up_proj.weight").narrow(0, Inter, Inter))
                : (W(p + "mlp.gate_proj.weight"), W(p + "mlp.up_proj.weight"));
            var mlp = (nn.functional.silu(x.matmul(gate.t())) * x.matmul(up.t())).matmul(W(p + "mlp.down_proj.weight").t());
            h = h + (olmo ? Norm(mlp, W(p + "post_feedforward_layernorm.weight"))
                : sandwich ? Norm(mlp, W(p + "post_mlp_layernorm.weight")) : mlp * residual);
        }
        // transformers' XIELUActivation: alpha_p and alpha_n through softplus, beta and eps as they are
        Tensor Xielu(Tensor up, string p)
        {
            var (alphaP, alphaN) = (nn.functional.softplus(W(p + "mlp.act_fn.alpha_p")), W(p + "mlp.act_fn.beta") + nn.functional.softplus(W(p + "mlp.act_fn.alpha_n")));
            var (beta, eps) = (W(p + "mlp.act_fn.beta"), W(p + "mlp.act_fn.eps"));
            return where(up > Serving.Engine.HeldScalars.Zero, alphaP * up * up + beta * up, (minimum(up, eps).expm1() - up) * alphaN + beta * up);
        }
        var logits = (starcoder ? LayerNorm(h, "model.norm") : Norm(h, W("model.norm.weight"))).matmul(W("model.embed_tokens.weight").t()) / (granite ? LogitsScaling : 1.0)
            * (cohere ? 0.25 : 1.0);
        return ReferenceChecks.Rows(logits);
    }
}
