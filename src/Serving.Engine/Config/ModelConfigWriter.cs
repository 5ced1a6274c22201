using System.Text.Json.Nodes;

namespace Serving.Engine.Config;

/// A ModelConfig written back as a Hugging Face config.json (transformers 4 spelling: rope_theta + rope_scaling),
/// which ModelConfig.Load reads back to the same config: what `init` and training write next to their weights.
public static class ModelConfigWriter
{
    public static JsonObject ToJson(ModelConfig config)
    {
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray(config.Architectures.Select(a => (JsonNode)a).ToArray()),
            ["model_type"] = config.ModelType,
            ["hidden_act"] = config.Activation switch
            {
                MlpActivation.Silu => "silu",
                MlpActivation.GeluTanh => "gelu_pytorch_tanh",
                MlpActivation.Relu2 => "relu2",
                _ => "xielu",
            },
            ["hidden_size"] = config.HiddenSize,
            ["intermediate_size"] = config.IntermediateSize,
            ["num_hidden_layers"] = config.NumHiddenLayers,
            ["num_attention_heads"] = config.NumAttentionHeads,
            ["num_key_value_heads"] = config.NumKeyValueHeads,
            ["head_dim"] = config.HeadDim,
            ["vocab_size"] = config.VocabSize,
            ["rms_norm_eps"] = config.RmsNormEps,
            ["max_position_embeddings"] = config.MaxPositionEmbeddings,
            ["rope_theta"] = config.Rope.Theta,
            ["attention_bias"] = config.QkvBias,
            ["mlp_bias"] = config.MlpBias,
            ["attention_out_bias"] = config.OutputBias,   // seed_oss's o bias apart from attention_bias (the others ignore it)
            ["tie_word_embeddings"] = config.TieWordEmbeddings,
            ["lm_head_bias"] = config.LmHeadBias,
            ["torch_dtype"] = config.Dtype,
            ["bos_token_id"] = config.BosTokenId,
            ["eos_token_id"] = config.EosTokenIds.Count == 1 ? config.EosTokenIds[0] : new JsonArray(config.EosTokenIds.Select(id => (JsonNode)id).ToArray()),
        };
        if (config.PartialRotaryFactor != 1.0) json["partial_rotary_factor"] = config.PartialRotaryFactor;
        json["use_bias"] = config.QkvBias && config.OutputBias && config.MlpBias;   // ernie's and starcoder2's one switch
        if (config.ClassifierFromToken.Count > 0)
        {
            json["classifier_from_token"] = new JsonArray(config.ClassifierFromToken.Select(t => (JsonNode)t).ToArray());
            json["method"] = config.ClassifierTwoWay ? "from_2_way_softmax" : "no_post_processing";
        }
        if (config.IsClassifier && config.JoinsScorePairs != (config.ClassifierFromToken.Count > 0)) json["use_pad_token"] = !config.JoinsScorePairs;
        else if (config.IsClassifier)
        {
            json["num_labels"] = config.Labels.Count;
            var labels = new JsonObject();
            for (var i = 0; i < config.Labels.Count; i++) labels[i.ToString(System.Globalization.CultureInfo.InvariantCulture)] = config.Labels[i];
            json["id2label"] = labels;
        }
        if (config.ProblemType is { } problem) json["problem_type"] = problem;
        if (config.IsMatryoshka) json["is_matryoshka"] = true;
        if (config.MatryoshkaDimensions.Count > 0) json["matryoshka_dimensions"] = new JsonArray(config.MatryoshkaDimensions.Select(d => (JsonNode)d).ToArray());
        if (!config.IsCausal) json["is_causal"] = false;
        json["rope_scaling"] = RopeScaling(config.Rope);
        WriteGemma(config, json);
        if (config.LayerWindows.Any(w => w is not null))   // which layers slide, in any family's reading (qwen's needs use_sliding_window)
        {
            json["sliding_window"] = config.LayerWindows.First(w => w is not null);
            json["use_sliding_window"] = true;
            json["layer_types"] = new JsonArray([.. config.LayerWindows.Select(w => (JsonNode)(w is null ? "full_attention" : "sliding_attention"))]);
        }
        else json["sliding_window"] = null;   // no window, also where the family's default has one (exaone4, gemma)
        if (config.ExpertSwigluLimit is { } limit) json["swiglu_limit"] = limit;   // gpt-oss's
        if (config.ResidualMultiplier is { } residual)   // granite's multipliers
        {
            json["embedding_multiplier"] = config.EmbeddingMultiplier;
            json["attention_multiplier"] = config.AttentionScale;
            json["residual_multiplier"] = residual;
            json["logits_scaling"] = config.LogitsDivisor;
        }
        if (config.LogitsMultiplier is { } logitScale) json["logit_scale"] = logitScale;   // cohere's
        if (config.NormsCentered) json["layer_norm_eps"] = config.RmsNormEps;
        if (config.NormBias) (json["norm_epsilon"], json["norm_eps"]) = (config.RmsNormEps, config.RmsNormEps);   // starcoder2's, nemotron's
        if (config.QkNorm == QkNorm.EachHeadOwnWeight) json["use_qk_norm"] = true;   // Command R+'s
        if (config.NumExperts > 0)   // the mixtures' fields, under every family's names
        {
            json["num_experts"] = config.NumExperts;
            json["num_local_experts"] = config.NumExperts;
            json["num_experts_per_tok"] = config.NumExpertsPerToken;
            json["moe_intermediate_size"] = config.ExpertIntermediateSize;
            json["norm_topk_prob"] = config.NormalizeTopKProbabilities;
            json["shared_expert_intermediate_size"] = config.SharedExpertIntermediateSize;
            json["shared_intermediate_size"] = config.SharedExpertIntermediateSize;   // granitemoeshared's
            json["mlp_only_layers"] = new JsonArray([.. config.DenseLayers.Select(l => (JsonNode)l)]);
            WriteErnieExperts(config, json);
            if (config.Routing == ExpertRouting.SparseMixer) json["router_jitter_noise"] = config.RouterJitter;   // phimoe's
        }
        if (config.NoRopeLayers.Count > 0)
            json["no_rope_layers"] = new JsonArray([.. Enumerable.Range(0, config.NumHiddenLayers).Select(i => (JsonNode)(config.NoRopeLayers.Contains(i) ? 0 : 1))]);
        if (config.Rope.Type == RopeType.LongRope) json["original_max_position_embeddings"] = config.Rope.OriginalMaxPositionEmbeddings;
        return json;
    }

    /// ernie4_5_moe's names for the mixture: its expert layers as a first, a last and the step between them.
    static void WriteErnieExperts(ModelConfig config, JsonObject json)
    {
        json["moe_num_experts"] = config.NumExperts;
        json["moe_k"] = config.NumExpertsPerToken;
        json["moe_num_shared_experts"] = config.SharedExpertIntermediateSize / config.ExpertIntermediateSize;
        var routed = Enumerable.Range(0, config.NumHiddenLayers).Where(config.IsExpertLayer).ToArray();
        if (routed.Length == 0) return;
        json["moe_layer_start_index"] = routed[0];
        json["moe_layer_end_index"] = routed[^1];
        json["moe_layer_interval"] = routed.Length > 1 ? routed[1] - routed[0] : 1;
    }

    /// The gemma block's fields (the architecture sets the rest: its norms, sandwich norms and embedding scale).
    static void WriteGemma(ModelConfig config, JsonObject json)
    {
        if (config.NormWeight != RmsNormWeight.OffsetBeforeRounding) return;
        if (config.AttentionScale is { } scale) json["query_pre_attn_scalar"] = 1 / (scale * scale);
        json["attn_logit_softcapping"] = config.AttentionSoftcap;
        json["final_logit_softcapping"] = config.FinalLogitSoftcap;
        if (config.LocalRope is { } local) json["rope_local_base_freq"] = local.Theta;
    }

    /// The rope's scaling; a plain rope says so (a family may default to a scaled one: gpt-oss's yarn).
    static JsonObject RopeScaling(RopeConfig rope) => rope.Type switch
    {
        RopeType.Default => new JsonObject { ["rope_type"] = "default" },
        RopeType.Linear => new JsonObject { ["rope_type"] = "linear", ["factor"] = rope.Factor },
        RopeType.Llama3 => new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = rope.Factor, ["low_freq_factor"] = rope.LowFreqFactor,
            ["high_freq_factor"] = rope.HighFreqFactor, ["original_max_position_embeddings"] = rope.OriginalMaxPositionEmbeddings,
        },
        RopeType.LongRope => new JsonObject
        {
            ["rope_type"] = "longrope", ["attention_factor"] = rope.AttentionScaling,
            ["short_factor"] = new JsonArray(rope.ShortFactor.Select(f => (JsonNode)f).ToArray()),
            ["long_factor"] = new JsonArray(rope.LongFactor.Select(f => (JsonNode)f).ToArray()),
        },
        RopeType.Yarn => new JsonObject
        {
            ["rope_type"] = "yarn", ["factor"] = rope.Factor, ["original_max_position_embeddings"] = rope.OriginalMaxPositionEmbeddings,
            ["beta_fast"] = rope.BetaFast, ["beta_slow"] = rope.BetaSlow, ["truncate"] = rope.Truncate,
            ["attention_factor"] = rope.AttentionScaling,
        },
        RopeType.DynamicNtkAlpha => new JsonObject { ["rope_type"] = "dynamic", ["alpha"] = rope.Alpha },
        _ => throw new ArgumentOutOfRangeException(nameof(rope), rope.Type, "a rope type the writer does not know"),
    };
}
