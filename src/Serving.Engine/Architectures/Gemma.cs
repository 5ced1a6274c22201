using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// Gemma2ForCausalLM and Gemma3ForCausalLM (gemma3_text: Gemma 3 1B, and the text decoder of the larger ones saved on
/// its own): Llama's tensors, plus what makes the gemma block (ModelConfig's options): norms stored as offsets from 1
/// and applied in float32 (RmsNormWeight.OffsetBeforeRounding), a norm on the attention output and on the MLP output as well
/// (post_attention_layernorm, post_feedforward_layernorm; the pre-MLP norm is pre_feedforward_layernorm), GeGLU with
/// GELU's tanh approximation, embeddings times sqrt(hidden_size), attention scaled by query_pre_attn_scalar^-0.5,
/// sliding-window layers between full ones (layer_types), tied embeddings by default. Gemma 2 soft-caps the attention
/// and final logits; Gemma 3 norms each query and key head and turns its sliding layers by rope_local_base_freq.
/// All three run the fused backend on CUDA: its kernels weigh the norms gemma's way, turn the sliding layers by their
/// own rope and soft-cap Gemma 2's attention scores (ATTN_SOFTCAP).
internal abstract class Gemma : ModelArchitecture
{
    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer)
            .Where(b => !b.CheckpointName.EndsWith("layernorm.weight", StringComparison.Ordinal))
            .Concat(Norms(config, layer)));

    // the checkpoint's four norms; this decoder names its pre-MLP norm post_attention_layernorm, as Llama's
    IEnumerable<WeightBinding> Norms(ModelConfig config, int layer)
    {
        var (from, to) = ($"model.layers.{layer}.", $"layers.{layer}.");
        long hidden = config.HiddenSize;
        yield return new($"{from}input_layernorm.weight", [hidden], $"{to}input_layernorm.weight");
        yield return new($"{from}post_attention_layernorm.weight", [hidden], $"{to}attention_output_norm.weight");
        yield return new($"{from}pre_feedforward_layernorm.weight", [hidden], $"{to}post_attention_layernorm.weight");
        yield return new($"{from}post_feedforward_layernorm.weight", [hidden], $"{to}mlp_output_norm.weight");
        if (config.QkNorm == QkNorm.None) yield break;
        foreach (var norm in LlamaLayout.HeadNorms(config, layer)) yield return norm;
    }

    /// What Gemma 2 and 3 share.
    protected static ModelConfig ReadGemma(ModelConfig config, JsonFields json, Func<int, bool> defaultSliding)
    {
        var attentionBias = json.Bool("attention_bias") ?? false;
        return config with
        {
            NormWeight = RmsNormWeight.OffsetBeforeRounding,
            SandwichNorms = true,
            EmbeddingMultiplier = Math.Sqrt(config.HiddenSize),
            EmbeddingMultiplierInModelDtype = true,
            AttentionScale = 1 / Math.Sqrt(json.Double("query_pre_attn_scalar") ?? config.HeadDim),
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            TieWordEmbeddings = json.Bool("tie_word_embeddings") ?? true,   // transformers' default, which gemma's configs leave out
            LayerWindows = ModelConfigReader.LayerWindows(json, config.NumHiddenLayers, defaultSliding),
        };
    }
}

/// GemmaForCausalLM (Gemma 1: gemma-2b, whose attention is multi-query, gemma-7b, CodeGemma): the gemma norms (offsets
/// from 1, in float32), GeGLU with GELU's tanh approximation, embeddings times sqrt(hidden_size), tied embeddings; Llama's
/// block otherwise (its two norms, attention scaled by 1 / sqrt(head_dim), no windows or soft-capping).
internal sealed class Gemma1 : ModelArchitecture
{
    public override string Name => "GemmaForCausalLM";
    public override string ModelType => "gemma";

    /// transformers' GemmaConfig (hidden_activation: its configs say gelu_pytorch_tanh, also under hidden_act).
    public override IReadOnlyDictionary<string, JsonNode> Defaults { get; } = new Dictionary<string, JsonNode>
    {
        ["head_dim"] = 256, ["rms_norm_eps"] = 1e-6, ["hidden_activation"] = "gelu_pytorch_tanh", ["bos_token_id"] = 2, ["eos_token_id"] = 1,
    };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var attentionBias = json.Bool("attention_bias") ?? false;
        return config with
        {
            NormWeight = RmsNormWeight.OffsetBeforeRounding,
            EmbeddingMultiplier = Math.Sqrt(config.HiddenSize),
            EmbeddingMultiplierInModelDtype = true,
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            TieWordEmbeddings = json.Bool("tie_word_embeddings") ?? true,
        };
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) => LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer));
}

/// Gemma 2: soft-capped attention (attn_logit_softcapping, 50) and final logits (final_logit_softcapping, 30); every
/// other layer, from the first, slides (sliding_window, 4096).
internal sealed class Gemma2 : Gemma
{
    public override string Name => "Gemma2ForCausalLM";
    public override string ModelType => "gemma2";

    /// transformers' Gemma2Config.
    public override IReadOnlyDictionary<string, JsonNode> Defaults { get; } = new Dictionary<string, JsonNode>
    {
        ["vocab_size"] = 256000, ["hidden_size"] = 2304, ["intermediate_size"] = 9216, ["num_hidden_layers"] = 26,
        ["num_attention_heads"] = 8, ["num_key_value_heads"] = 4, ["head_dim"] = 256, ["max_position_embeddings"] = 8192,
        ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 10000.0, ["query_pre_attn_scalar"] = 256, ["sliding_window"] = 4096,
        ["hidden_activation"] = "gelu_pytorch_tanh", ["bos_token_id"] = 2, ["eos_token_id"] = 1,
    };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) =>
        ReadGemma(config, json, layer => layer % 2 == 0) with
        {
            // absent: transformers' default; given as null: none
            AttentionSoftcap = json.Json.ContainsKey("attn_logit_softcapping") ? json.Double("attn_logit_softcapping") : 50.0,
            FinalLogitSoftcap = json.Json.ContainsKey("final_logit_softcapping") ? json.Double("final_logit_softcapping") : 30.0,
        };
}

/// Gemma 3's text decoder: q_norm and k_norm per head; five sliding layers to each full one (sliding_window_pattern,
/// 6) unless layer_types says; the sliding layers turn by rope_local_base_freq (10000) without scaling, the full ones by
/// rope_theta and rope_scaling (transformers 5: rope_parameters per layer type). No soft-capping unless configured.
/// EmbeddingGemma (a Gemma3TextModel under use_bidirectional_attention) attends both ways: every position sees the whole
/// prompt, a sliding layer's positions less than sliding_window / 2 + 1 apart (transformers' config halves the window
/// it reads then, its mask bounding the distance either side; ModelConfig.IsCausal false: the pooling runner).
internal sealed class Gemma3 : Gemma
{
    public override string Name => "Gemma3ForCausalLM";
    public override string ModelType => "gemma3_text";
    /// transformers' text decoder alone (Gemma3Model is the multimodal one).
    public override string BaseModelName => "Gemma3TextModel";

    /// transformers' Gemma3TextConfig: a Gemma 3 4B-27B checkpoint's text_config gives only what differs from these.
    public override IReadOnlyDictionary<string, JsonNode> Defaults { get; } = new Dictionary<string, JsonNode>
    {
        ["vocab_size"] = 262208, ["hidden_size"] = 2304, ["intermediate_size"] = 9216, ["num_hidden_layers"] = 26,
        ["num_attention_heads"] = 8, ["num_key_value_heads"] = 4, ["head_dim"] = 256, ["max_position_embeddings"] = 131072,
        ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 1000000.0, ["query_pre_attn_scalar"] = 256, ["sliding_window"] = 4096,
        ["hidden_activation"] = "gelu_pytorch_tanh", ["bos_token_id"] = 2, ["eos_token_id"] = 1,
    };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var pattern = json.Int("sliding_window_pattern") ?? 6;
        var nested = json.Object("rope_parameters")?.Has("sliding_attention") == true;
        var bidirectional = json.Bool("use_bidirectional_attention") == true;
        var gemma = ReadGemma(config, json, layer => (layer + 1) % pattern != 0);
        return gemma with
        {
            LayerWindows = bidirectional ? [.. gemma.LayerWindows.Select(w => w / 2 + 1)] : gemma.LayerWindows,
            QkNorm = QkNorm.EachHead,
            AttentionSoftcap = json.Double("attn_logit_softcapping"),
            FinalLogitSoftcap = json.Double("final_logit_softcapping"),
            LocalRope = nested ? RopeConfig.Read(json, "sliding_attention") : new RopeConfig { Theta = json.Double("rope_local_base_freq") ?? 10000.0 },
            IsCausal = config.IsCausal && !bidirectional,
        };
    }
}
