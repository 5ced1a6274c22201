using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// GraniteForCausalLM (IBM's Granite 3): Llama's layout with four multipliers: the embeddings times
/// embedding_multiplier, attention scaled by attention_multiplier (not 1 / sqrt(head_dim)), each attention and MLP output
/// times residual_multiplier before it joins the residual stream, and the logits divided by logits_scaling.
internal sealed class Granite : ModelArchitecture
{
    public override string Name => "GraniteForCausalLM";
    public override string ModelType => "granite";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) =>
        WithMultipliers(config, json) with { MlpBias = json.Bool("mlp_bias") ?? false };

    /// Granite's attention bias and its embedding, attention, residual and logits multipliers (GraniteMoE's too).
    internal static ModelConfig WithMultipliers(ModelConfig config, JsonFields json)
    {
        var attentionBias = json.Bool("attention_bias") ?? false;
        return config with
        {
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            EmbeddingMultiplier = json.Double("embedding_multiplier") ?? 1.0,
            AttentionScale = json.Double("attention_multiplier") ?? 1.0,
            ResidualMultiplier = json.Double("residual_multiplier") ?? 1.0,
            LogitsDivisor = json.Double("logits_scaling") ?? 1.0,
        };
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer));
}

/// SmolLM3ForCausalLM (Hugging Face's SmolLM3): Llama's layout; the layers whose no_rope_layers entry is 0 (every
/// fourth by default, no_rope_layer_interval) apply no rotary embedding. Sliding windows only with use_sliding_window.
internal sealed class SmolLM3 : ModelArchitecture
{
    public override string Name => "SmolLM3ForCausalLM";
    public override string ModelType => "smollm3";

    /// transformers' SmolLM3Config for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode> { ["tie_word_embeddings"] = true, ["rope_theta"] = 2000000.0 };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var attentionBias = json.Bool("attention_bias") ?? false;
        var interval = json.Int("no_rope_layer_interval") ?? 4;
        var usesRope = json.Has("no_rope_layers") ? json.IntOrList("no_rope_layers")
            : [.. Enumerable.Range(0, config.NumHiddenLayers).Select(i => (i + 1) % interval != 0 ? 1 : 0)];
        // transformers reads the first num_hidden_layers entries
        if (usesRope.Count < config.NumHiddenLayers)
            throw new ModelConfigException($"{json.File}: no_rope_layers lists {usesRope.Count} layers, num_hidden_layers is {config.NumHiddenLayers}");
        return config with
        {
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            MlpBias = json.Bool("mlp_bias") ?? false,
            NoRopeLayers = [.. Enumerable.Range(0, config.NumHiddenLayers).Where(i => usesRope[i] == 0)],
            // under use_sliding_window the layers without rope slide (SmolLM3Config), unless layer_types says otherwise
            LayerWindows = json.Bool("use_sliding_window") ?? false
                ? ModelConfigReader.LayerWindows(json, config.NumHiddenLayers, layer => usesRope[layer] == 0) : [],
        };
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer));
}

/// Olmo2ForCausalLM (AllenAI's OLMo 2): Llama's projections with norms after each sublayer instead of before it
/// (post_attention_layernorm on the attention output, post_feedforward_layernorm on the MLP output, no input norms),
/// q_norm and k_norm over the whole q and k projections, and norms that scale in float32 before rounding. One device:
/// the whole-projection q/k norms would need every rank's heads.
internal class Olmo2 : ModelArchitecture
{
    public override string Name => "Olmo2ForCausalLM";
    public override string ModelType => "olmo2";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var attentionBias = json.Bool("attention_bias") ?? false;
        return config with
        {
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            QkNorm = QkNorm.WholeProjection,
            PreNorms = false,
            SandwichNorms = true,
            NormWeight = RmsNormWeight.BeforeRounding,
        };
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.OutputNormedLayer(config, layer));
}

/// Olmo3ForCausalLM (AllenAI's OLMo 3): OLMo 2's decoder with three sliding-window layers (sliding_window, 4096) to each
/// full one (layer_types, else every fourth layer full). A rope_scaling (YaRN in the long-context releases) turns the
/// full layers only: the sliding layers keep the plain rotary embedding of the same theta (LocalRope), as transformers'
/// Olmo3 builds a default-type rotary embedding for them.
internal sealed class Olmo3 : Olmo2
{
    public override string Name => "Olmo3ForCausalLM";
    public override string ModelType => "olmo3";

    /// transformers' Olmo3Config for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode> { ["sliding_window"] = 4096 };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var perLayerType = json.Object("rope_parameters")?.Has("sliding_attention") == true;
        return base.ReadSpecifics(config, json) with
        {
            LayerWindows = ModelConfigReader.LayerWindows(json, config.NumHiddenLayers, layer => (layer + 1) % 4 != 0),
            LocalRope = perLayerType ? RopeConfig.Read(json, "sliding_attention")
                : config.Rope.Type == RopeType.Default ? null : new RopeConfig { Theta = config.Rope.Theta },
        };
    }
}

/// GlmForCausalLM (GLM-4-9B's -hf releases): Llama's q/k/v (a bias under attention_bias, on by default; none on o) with
/// rotary embedding over the first partial_rotary_factor (0.5) of each head in GLM's interleaved pairs, and
/// gate_up_proj stored fused.
internal class Glm : ModelArchitecture
{
    public override string Name => "GlmForCausalLM";
    public override string ModelType => "glm";

    /// transformers' GlmConfig for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode>
        {
            ["attention_bias"] = true, ["rms_norm_eps"] = 1.5625e-07, ["head_dim"] = 128,
            ["eos_token_id"] = new System.Text.Json.Nodes.JsonArray(151329, 151336, 151338),
        };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) => config with
    {
        QkvBias = json.Bool("attention_bias") ?? false,
        PartialRotaryFactor = ModelConfigReader.PartialRotaryFactor(json, config.HeadDim, fallback: 0.5),
        InterleavedRope = true,
    };

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => Layer(config, layer));

    /// Llama's attention projections, the fused gate_up_proj, down_proj and the two pre-norms.
    protected static IEnumerable<WeightBinding> Layer(ModelConfig config, int layer)
    {
        var (from, to) = ($"model.layers.{layer}.", $"layers.{layer}.");
        var (hidden, inter) = ((long)config.HiddenSize, (long)config.IntermediateSize);
        var attention = LlamaLayout.Layer(config, layer).Where(b => b.CheckpointName.Contains(".self_attn.", StringComparison.Ordinal));
        return attention.Concat(
        [
            new($"{from}mlp.gate_up_proj.weight", [2 * inter, hidden], $"{to}mlp.gate_up_proj.weight", 0,
                [new RowSegment(RowKind.Gate, 0, inter), new RowSegment(RowKind.Up, inter, inter)]),
            new($"{from}mlp.down_proj.weight", [hidden, inter], $"{to}mlp.down_proj.weight"),
            new($"{from}input_layernorm.weight", [hidden], $"{to}input_layernorm.weight"),
            new($"{from}post_attention_layernorm.weight", [hidden], $"{to}post_attention_layernorm.weight"),
        ]);
    }
}

/// Glm4ForCausalLM (GLM-4-0414, GLM-Z1): GLM's block with norms on the attention and MLP outputs too
/// (post_self_attn_layernorm, post_mlp_layernorm) besides the pre-norms; attention_bias off unless the config says.
internal sealed class Glm4 : Glm
{
    public override string Name => "Glm4ForCausalLM";
    public override string ModelType => "glm4";

    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode>();

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) => base.ReadSpecifics(config, json) with { SandwichNorms = true };

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer =>
        {
            var (from, to) = ($"model.layers.{layer}.", $"layers.{layer}.");
            var hidden = (long)config.HiddenSize;
            return Layer(config, layer).Concat(
            [
                new($"{from}post_self_attn_layernorm.weight", [hidden], $"{to}attention_output_norm.weight"),
                new($"{from}post_mlp_layernorm.weight", [hidden], $"{to}mlp_output_norm.weight"),
            ]);
        });
}

/// CohereForCausalLM (Command R, Aya Expanse): a parallel block (attention and MLP read the same normed input, and both
/// outputs join the residual stream at once), LayerNorm about the mean without bias (layer_norm_eps) in place of
/// RMSNorm, rotary embedding in interleaved pairs, the logits times logit_scale, tied embeddings by default; with
/// use_qk_norm (Command R+) the same LayerNorm over each query and key head, by a weight per head (q_norm (heads,
/// head_dim), k_norm (kv heads, head_dim)).
internal class Cohere : ModelArchitecture
{
    public override string Name => "CohereForCausalLM";
    public override string ModelType => "cohere";

    /// transformers' CohereConfig for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode> { ["tie_word_embeddings"] = true };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var attentionBias = json.Bool("attention_bias") ?? false;
        return config with
        {
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            RmsNormEps = json.Double("layer_norm_eps") ?? 1e-5,
            NormsCentered = true,
            NormWeight = RmsNormWeight.BeforeRounding,
            ParallelBlock = true,
            InterleavedRope = true,
            RotaryPrecision = RotaryPrecision.Float32RoundedTables,
            LogitsMultiplier = json.Double("logit_scale") ?? 0.0625,
            QkNorm = json.Bool("use_qk_norm") == true ? QkNorm.EachHeadOwnWeight : QkNorm.None,
        };
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer)
            .Where(b => !b.CheckpointName.EndsWith("post_attention_layernorm.weight", StringComparison.Ordinal))
            .Concat(config.QkNorm == QkNorm.EachHeadOwnWeight ? LlamaLayout.HeadNorms(config, layer) : []));
}

/// Cohere2ForCausalLM (Command R7B, Command A): Cohere's block, with three sliding-window layers (sliding_window, 4096)
/// to each full one (layer_types, else sliding_window_pattern 4), and rotary embedding in the sliding layers only: the
/// full layers see positions through the mask alone.
internal sealed class Cohere2 : Cohere
{
    public override string Name => "Cohere2ForCausalLM";
    public override string ModelType => "cohere2";

    /// transformers' Cohere2Config for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode> { ["tie_word_embeddings"] = true, ["sliding_window"] = 4096 };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var pattern = json.Int("sliding_window_pattern") ?? 4;
        if (pattern < 1) throw new ModelConfigException($"{json.File}: field 'sliding_window_pattern' must be positive, got {pattern}");
        var windows = ModelConfigReader.LayerWindows(json, config.NumHiddenLayers, layer => (layer + 1) % pattern != 0);
        return base.ReadSpecifics(config, json) with
        {
            LayerWindows = windows,
            NoRopeLayers = [.. Enumerable.Range(0, config.NumHiddenLayers).Where(layer => windows[layer] is null)],
        };
    }
}
