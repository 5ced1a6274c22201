using Serving.Engine.Config;
using Serving.Engine.Weights;
using static Serving.Engine.Weights.RowKind;

namespace Serving.Engine.Architectures;

/// Mixture-of-experts families: Llama's attention, and in place of the MLP a router (E x hidden) and E SwiGLU experts
/// (the model's `mlp.experts` parameters stack them: expert e's gate and up rows at e x 2F, its down rows at e x hidden).
/// Each token runs its top-k experts by the router's softmax and sums their outputs weighted by those probabilities
/// (../Model/MoeMlp). On CUDA the fused kernels run the attention and norms, and the experts' products over the rows of
/// a step grouped by expert on the device (expert_linear.cu in 16 bits, fp8_few_rows.cu's experts_few_rows in FP8), so
/// decode steps are captured as CUDA graphs; a long prompt's many rows an expert run a library product a group,
/// counted on the host. One device only.
internal static class ExpertLayout
{
    /// The router's and every expert's tensors of one layer, from their checkpoint names (expert e's gate, up and down):
    /// every expert's gate and up, then every expert's down, so that a load of one stacked weight at a time
    /// (../Model/Fp8ProjectionsAsLoaded) finishes one before it starts the other.
    public static IEnumerable<WeightBinding> Experts(ModelConfig config, int layer, string router,
        Func<int, (string Gate, string Up, string Down)> expert)
    {
        var to = $"layers.{layer}.mlp.";
        var (hidden, width) = ((long)config.HiddenSize, (long)config.ExpertIntermediateSize);
        yield return new(router, [config.NumExperts, hidden], to + "router.weight");
        for (var e = 0; e < config.NumExperts; e++)
        {
            var (gate, up, _) = expert(e);
            yield return new(gate, [width, hidden], to + "experts_gate_up.weight", e * 2 * width, Gate);
            yield return new(up, [width, hidden], to + "experts_gate_up.weight", e * 2 * width + width, Up);
        }
        for (var e = 0; e < config.NumExperts; e++)
            yield return new(expert(e).Down, [hidden, width], to + "experts_down.weight", e * hidden);
    }

    /// A shared expert's gate, up and down tensors of one layer, stored under prefix (`model.layers.N.mlp.shared_expert.`),
    /// as the model's shared_expert MLP: gate and up fused.
    public static IEnumerable<WeightBinding> SharedExpert(ModelConfig config, int layer, string prefix)
    {
        var to = $"layers.{layer}.mlp.shared_expert.";
        var (hidden, shared) = ((long)config.HiddenSize, (long)config.SharedExpertIntermediateSize);
        yield return new($"{prefix}gate_proj.weight", [shared, hidden], to + "gate_up_proj.weight", 0, Gate);
        yield return new($"{prefix}up_proj.weight", [shared, hidden], to + "gate_up_proj.weight", shared, Up);
        yield return new($"{prefix}down_proj.weight", [hidden, shared], to + "down_proj.weight");
    }

    /// Llama's tensors of one layer but its MLP's.
    public static IEnumerable<WeightBinding> Attention(ModelConfig config, int layer) =>
        LlamaLayout.Layer(config, layer).Where(b => !b.CheckpointName.Contains(".mlp.", StringComparison.Ordinal));

    /// Llama's MLP tensors of one layer (a dense layer of a mixture-of-experts model).
    public static IEnumerable<WeightBinding> DenseMlp(ModelConfig config, int layer) =>
        LlamaLayout.Layer(config, layer).Where(b => b.CheckpointName.Contains(".mlp.", StringComparison.Ordinal));

    /// The Qwen mixtures' dense layers: those mlp_only_layers names, and those off every decoder_sparse_step-th.
    public static int[] DenseLayers(JsonFields json, int layers)
    {
        var step = json.Int("decoder_sparse_step") ?? 1;
        if (step < 1) throw new ModelConfigException($"{json.File}: decoder_sparse_step must be positive, got {step}");
        var denseOnly = json.Has("mlp_only_layers") ? json.IntOrList("mlp_only_layers") : [];
        return [.. Enumerable.Range(0, layers).Where(i => denseOnly.Contains(i) || (i + 1) % step != 0)];
    }

    public static void Check(string file, ModelConfig config)
    {
        if (config.NumExperts < 1 || config.NumExpertsPerToken < 1 || config.NumExpertsPerToken > config.NumExperts)
            throw new ModelConfigException($"{file}: a mixture of experts needs 1 <= num_experts_per_tok ({config.NumExpertsPerToken}) <= " +
                $"its experts ({config.NumExperts})");
    }
}

/// MixtralForCausalLM: Mistral's attention; every layer routes to its top num_experts_per_tok of num_local_experts
/// (block_sparse_moe.gate, experts.N.w1 / w3 / w2), the chosen probabilities normalized to sum to 1.
internal sealed class Mixtral : ModelArchitecture
{
    public override string Name => "MixtralForCausalLM";
    public override string ModelType => "mixtral";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var read = config with
        {
            NumExperts = json.Int("num_local_experts") ?? 8,
            NumExpertsPerToken = json.Int("num_experts_per_tok") ?? 2,
            ExpertIntermediateSize = config.IntermediateSize,
            NormalizeTopKProbabilities = true,
            LayerWindows = ModelConfigReader.EveryLayerWindows(json, config.NumHiddenLayers),
        };
        ExpertLayout.Check(json.File, read);
        return read;
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => ExpertLayout.Attention(config, layer).Concat(ExpertLayout.Experts(config, layer,
            $"model.layers.{layer}.block_sparse_moe.gate.weight",
            e => ($"model.layers.{layer}.block_sparse_moe.experts.{e}.w1.weight", $"model.layers.{layer}.block_sparse_moe.experts.{e}.w3.weight",
                $"model.layers.{layer}.block_sparse_moe.experts.{e}.w2.weight"))));
}

/// PhimoeForCausalLM (Phi-3.5-MoE): Mixtral's layout with two experts per token chosen by SparseMixer
/// (router_jitter_noise), every norm an nn.LayerNorm with a bias (rms_norm_eps), attention_bias on q, k, v and o,
/// lm_head_bias, and longrope whose cos and sin are scaled by short_mscale (long_mscale must be the same: transformers
/// switches between them by the batch's longest position).
internal sealed class Phimoe : ModelArchitecture
{
    public override string Name => "PhimoeForCausalLM";
    public override string ModelType => "phimoe";

    /// transformers' PhimoeConfig for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode>
        {
            ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 1000000.0, ["num_local_experts"] = 16, ["num_experts_per_tok"] = 2,
            ["router_jitter_noise"] = 0.01, ["max_position_embeddings"] = 131072,
        };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        if (json.Int("num_experts_per_tok") != 2)
            throw ModelConfigException.Unsupported(json.File, "num_experts_per_tok", json.Int("num_experts_per_tok"), "2 (SparseMixer routes to two experts)");
        var bias = json.Bool("attention_bias") ?? false;
        var read = config.WithLayerNorms() with
        {
            NumExperts = json.PositiveInt("num_local_experts"),
            NumExpertsPerToken = 2,
            ExpertIntermediateSize = config.IntermediateSize,
            Routing = ExpertRouting.SparseMixer,
            RouterJitter = json.Double("router_jitter_noise")!.Value,
            QkvBias = bias,
            OutputBias = bias,
            LmHeadBias = json.Bool("lm_head_bias") ?? false,
            LayerWindows = ModelConfigReader.EveryLayerWindows(json, config.NumHiddenLayers),
            Rope = config.Rope.Type == RopeType.LongRope ? config.Rope with { AttentionScaling = Mscale(json) ?? config.Rope.AttentionScaling } : config.Rope,
        };
        ExpertLayout.Check(json.File, read);
        return read;
    }

    /// longrope's short_mscale, where rope_scaling gives it (and a long_mscale equal to it).
    static double? Mscale(JsonFields json)
    {
        var scaling = json.Object("rope_scaling") ?? json.Object("rope_parameters");
        var (shortScale, longScale) = (scaling?.Double("short_mscale"), scaling?.Double("long_mscale"));
        if (shortScale != longScale)
            throw new ModelConfigException($"{json.File}: rope_scaling's short_mscale ({shortScale}) and long_mscale ({longScale}) differ: " +
                "transformers switches between them by the batch's longest position, which a paged cache cannot follow");
        return shortScale;
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => ExpertLayout.Attention(config, layer)
            .Concat(new[] { "input_layernorm", "post_attention_layernorm" }.Select(norm =>
                new WeightBinding($"model.layers.{layer}.{norm}.bias", [config.HiddenSize], $"layers.{layer}.{norm}.bias")))
            .Concat(ExpertLayout.Experts(config, layer, $"model.layers.{layer}.block_sparse_moe.gate.weight",
                e => ($"model.layers.{layer}.block_sparse_moe.experts.{e}.w1.weight", $"model.layers.{layer}.block_sparse_moe.experts.{e}.w3.weight",
                    $"model.layers.{layer}.block_sparse_moe.experts.{e}.w2.weight"))));
}

/// GraniteMoeForCausalLM and GraniteMoeSharedForCausalLM (IBM's Granite 3 mixtures): Granite's attention and
/// multipliers; every layer routes to its top num_experts_per_tok of num_local_experts experts of intermediate_size by
/// the router's logits, weighed by their softmax over those k (block_sparse_moe.router.layer); the experts' gate and up
/// stacked in one (experts, 2F, hidden) tensor (block_sparse_moe.input_linear), their down in one (experts, hidden, F)
/// (output_linear). The shared variant adds a dense MLP every token runs (shared_mlp.input_linear: gate and up fused, of
/// shared_intermediate_size; output_linear), ungated.
internal class GraniteMoe : ModelArchitecture
{
    public override string Name => "GraniteMoeForCausalLM";
    public override string ModelType => "granitemoe";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var read = Granite.WithMultipliers(config, json) with
        {
            NumExperts = json.Int("num_local_experts") ?? 8,
            NumExpertsPerToken = json.Int("num_experts_per_tok") ?? 2,
            ExpertIntermediateSize = config.IntermediateSize,
            Routing = ExpertRouting.SoftmaxOverTopK,
            SharedExpertIntermediateSize = SharedWidth(json),
        };
        ExpertLayout.Check(json.File, read);
        return read;
    }

    /// The shared MLP's width: none in GraniteMoE.
    protected virtual int SharedWidth(JsonFields json) => 0;

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) => LlamaLayout.Model(config, layer => Layer(config, layer));

    static IEnumerable<WeightBinding> Layer(ModelConfig config, int layer)
    {
        var (from, to) = ($"model.layers.{layer}.", $"layers.{layer}.mlp.");
        var (experts, hidden, width, shared) = ((long)config.NumExperts, (long)config.HiddenSize, (long)config.ExpertIntermediateSize,
            (long)config.SharedExpertIntermediateSize);
        var bindings = ExpertLayout.Attention(config, layer).Concat(
        [
            new($"{from}block_sparse_moe.router.layer.weight", [experts, hidden], to + "router.weight"),
            new($"{from}block_sparse_moe.input_linear.weight", [experts, 2 * width, hidden], to + "experts_gate_up.weight"),
            new($"{from}block_sparse_moe.output_linear.weight", [experts, hidden, width], to + "experts_down.weight"),
        ]);
        if (shared == 0) return bindings;
        return bindings.Concat(
        [
            new($"{from}shared_mlp.input_linear.weight", [2 * shared, hidden], to + "shared_expert.gate_up_proj.weight", 0,
                [new RowSegment(Gate, 0, shared), new RowSegment(Up, shared, shared)]),
            new($"{from}shared_mlp.output_linear.weight", [hidden, shared], to + "shared_expert.down_proj.weight"),
        ]);
    }
}

/// GraniteMoeSharedForCausalLM: GraniteMoE with a shared MLP of shared_intermediate_size.
internal sealed class GraniteMoeShared : GraniteMoe
{
    public override string Name => "GraniteMoeSharedForCausalLM";
    public override string ModelType => "granitemoeshared";

    protected override int SharedWidth(JsonFields json) => json.Int("shared_intermediate_size") ?? 0;
}

/// Qwen3MoeForCausalLM: Qwen3's attention (q_norm, k_norm); layers route to their top num_experts_per_tok of
/// num_experts experts of moe_intermediate_size (mlp.gate, mlp.experts.N.gate_proj / up_proj / down_proj), normalized
/// when norm_topk_prob; the layers of mlp_only_layers, or off decoder_sparse_step, keep a dense MLP of intermediate_size.
internal class Qwen3Moe : ModelArchitecture
{
    public override string Name => "Qwen3MoeForCausalLM";
    public override string ModelType => "qwen3_moe";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var attentionBias = json.Bool("attention_bias") ?? false;
        var read = config with
        {
            QkNorm = QkNorm.EachHead,
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            LayerWindows = ModelConfigReader.QwenLayerWindows(json, config.NumHiddenLayers),
            NumExperts = json.Int("num_experts") ?? 128,
            NumExpertsPerToken = json.Int("num_experts_per_tok") ?? 8,
            ExpertIntermediateSize = json.Int("moe_intermediate_size") ?? 768,
            NormalizeTopKProbabilities = json.Bool("norm_topk_prob") ?? false,
            DenseLayers = ExpertLayout.DenseLayers(json, config.NumHiddenLayers),
        };
        ExpertLayout.Check(json.File, read);
        return read;
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer =>
        {
            var mlp = $"model.layers.{layer}.mlp.";
            var feedForward = config.IsExpertLayer(layer)
                ? ExpertLayout.Experts(config, layer, mlp + "gate.weight",
                    e => ($"{mlp}experts.{e}.gate_proj.weight", $"{mlp}experts.{e}.up_proj.weight", $"{mlp}experts.{e}.down_proj.weight"))
                : ExpertLayout.DenseMlp(config, layer);
            return ExpertLayout.Attention(config, layer).Concat(LlamaLayout.HeadNorms(config, layer)).Concat(feedForward);
        });
}

/// OlmoeForCausalLM (AllenAI's OLMoE): Qwen3-MoE's layout and routing (mlp.gate, mlp.experts.N.*, softmax then top-k,
/// normalized when norm_topk_prob), every layer routing to experts of intermediate_size, with OLMo 2's q/k norms over
/// the whole projections under Llama's RMSNorm. clip_qkv is refused.
internal sealed class Olmoe : Qwen3Moe
{
    public override string Name => "OlmoeForCausalLM";
    public override string ModelType => "olmoe";

    /// transformers' OlmoeConfig for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode> { ["rms_norm_eps"] = 1e-5, ["num_experts"] = 64, ["num_experts_per_tok"] = 8 };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        if (json.Double("clip_qkv") is { } clip)
            throw ModelConfigException.Unsupported(json.File, "clip_qkv", clip, "null (q, k and v unclipped)");
        var attentionBias = json.Bool("attention_bias") ?? false;
        var read = config with
        {
            QkNorm = QkNorm.WholeProjection,
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            NumExperts = json.PositiveInt("num_experts"),
            NumExpertsPerToken = json.PositiveInt("num_experts_per_tok"),
            ExpertIntermediateSize = config.IntermediateSize,
            NormalizeTopKProbabilities = json.Bool("norm_topk_prob") ?? false,
        };
        ExpertLayout.Check(json.File, read);
        return read;
    }
}

/// Qwen2MoeForCausalLM (Qwen1.5-MoE, Qwen2-57B-A14B): Qwen2's attention (a bias on q, k and v); layers route to their
/// top num_experts_per_tok of num_experts experts of moe_intermediate_size (normalized when norm_topk_prob), and every
/// token also runs the shared expert (shared_expert_intermediate_size), scaled by the sigmoid of shared_expert_gate.
internal sealed class Qwen2Moe : ModelArchitecture
{
    public override string Name => "Qwen2MoeForCausalLM";
    public override string ModelType => "qwen2_moe";

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        var read = config with
        {
            QkvBias = true,
            LayerWindows = ModelConfigReader.QwenLayerWindows(json, config.NumHiddenLayers),
            NumExperts = json.Int("num_experts") ?? 60,
            NumExpertsPerToken = json.Int("num_experts_per_tok") ?? 4,
            ExpertIntermediateSize = json.Int("moe_intermediate_size") ?? 1408,
            SharedExpertIntermediateSize = json.Int("shared_expert_intermediate_size") ?? 5632,
            SharedExpertGated = true,
            NormalizeTopKProbabilities = json.Bool("norm_topk_prob") ?? false,
            DenseLayers = ExpertLayout.DenseLayers(json, config.NumHiddenLayers),
        };
        ExpertLayout.Check(json.File, read);
        return read;
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer =>
        {
            if (!config.IsExpertLayer(layer)) return LlamaLayout.Layer(config, layer);
            var mlp = $"model.layers.{layer}.mlp.";
            var experts = ExpertLayout.Experts(config, layer, mlp + "gate.weight",
                e => ($"{mlp}experts.{e}.gate_proj.weight", $"{mlp}experts.{e}.up_proj.weight", $"{mlp}experts.{e}.down_proj.weight"));
            WeightBinding gate = new($"{mlp}shared_expert_gate.weight", [1, config.HiddenSize], $"layers.{layer}.mlp.shared_expert_gate.weight");
            return ExpertLayout.Attention(config, layer).Concat(experts).Concat(ExpertLayout.SharedExpert(config, layer, mlp + "shared_expert.")).Append(gate);
        });
}
