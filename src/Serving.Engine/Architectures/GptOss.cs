using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// GptOssForCausalLM (OpenAI's gpt-oss-20b; gpt-oss-120b too, but dequantized it takes ~234 GB and a mixture of experts
/// runs on one device, so no GPU lent here holds it): Llama's attention with a bias on every projection and
/// a learned sink logit per query head (self_attn.sinks, ModelConfig.AttentionSinks), every other layer sliding over
/// sliding_window (128) positions from the first (layer_types), YaRN rope; norms that scale in float32
/// (RmsNormWeight.BeforeRounding); in place of the MLP a router with a bias (mlp.router) and experts stored stacked as
/// transformers' GptOssExperts holds them: gate_up_proj [E, hidden, 2F] with the gate and up columns interleaved,
/// down_proj [E, F, hidden], each with a bias (ModelConfig.ExpertSwigluLimit; ../Model/GptOssExperts). The released
/// checkpoints store the experts in MXFP4 (quantization_config mxfp4: *_blocks and *_scales), dequantized at load
/// (../Weights/Mxfp4Weights). On CUDA in 16 bits steps run the fused backend (its tensor-core attention takes the
/// sinks; decode steps captured as CUDA graphs, the experts' rows grouped on the device as other mixtures'); one device
/// only.
internal sealed class GptOss : ModelArchitecture
{
    public override string Name => "GptOssForCausalLM";
    public override string ModelType => "gpt_oss";

    /// transformers' GptOssConfig, for the fields a config.json leaves out.
    public override IReadOnlyDictionary<string, JsonNode> Defaults { get; } = new Dictionary<string, JsonNode>
    {
        ["num_hidden_layers"] = 36, ["num_local_experts"] = 128, ["vocab_size"] = 201088, ["hidden_size"] = 2880,
        ["intermediate_size"] = 2880, ["head_dim"] = 64, ["num_attention_heads"] = 64, ["num_key_value_heads"] = 8,
        ["sliding_window"] = 128, ["rope_theta"] = 150000.0, ["rms_norm_eps"] = 1e-5, ["max_position_embeddings"] = 131072,
        ["num_experts_per_tok"] = 4, ["swiglu_limit"] = 7.0, ["attention_bias"] = true,
    };

    /// GptOssConfig's rope_scaling, for a config that gives neither it nor transformers 5's rope_parameters.
    static readonly RopeConfig DefaultRope = new()
    {
        Theta = 150000.0, Type = RopeType.Yarn, Factor = 32, BetaFast = 32, BetaSlow = 1, Truncate = false,
        OriginalMaxPositionEmbeddings = 4096, AttentionScaling = 0.1 * Math.Log(32) + 1,
    };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        // Defaults fill what the config leaves out
        var attentionBias = json.Bool("attention_bias")!.Value;
        var limit = json.Double("swiglu_limit")!.Value;
        if (!(limit > 0)) throw new ModelConfigException($"{json.File}: field 'swiglu_limit' must be positive, got {limit}");
        var read = config with
        {
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            NormWeight = RmsNormWeight.BeforeRounding,
            AttentionSinks = true,
            LayerWindows = ModelConfigReader.LayerWindows(json, config.NumHiddenLayers, layer => layer % 2 == 0),
            NumExperts = json.PositiveInt("num_local_experts"),
            NumExpertsPerToken = json.PositiveInt("num_experts_per_tok"),
            ExpertIntermediateSize = config.IntermediateSize,
            ExpertSwigluLimit = limit,
            Rope = json.Has("rope_scaling") || json.Has("rope_parameters") ? config.Rope : DefaultRope with { Theta = config.Rope.Theta },
        };
        ExpertLayout.Check(json.File, read);
        return read;
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => ExpertLayout.Attention(config, layer).Concat(Layer(config, layer)));

    // the sinks, the router and the stacked experts of one layer: the experts' matrices output-major in the model
    // (ExpertWeights), input-major in the checkpoint
    static IEnumerable<WeightBinding> Layer(ModelConfig config, int layer)
    {
        var (from, to) = ($"model.layers.{layer}.", $"layers.{layer}.");
        var (experts, hidden, width) = ((long)config.NumExperts, (long)config.HiddenSize, (long)config.ExpertIntermediateSize);
        yield return new($"{from}self_attn.sinks", [config.NumAttentionHeads], $"{to}self_attn.sinks");
        yield return new($"{from}mlp.router.weight", [experts, hidden], $"{to}mlp.router.weight");
        yield return new($"{from}mlp.router.bias", [experts], $"{to}mlp.router.bias");
        yield return new($"{from}mlp.experts.gate_up_proj", [experts, hidden, 2 * width], $"{to}mlp.gate_up_proj.weight") { StoredInputMajor = true };
        yield return new($"{from}mlp.experts.gate_up_proj_bias", [experts, 2 * width], $"{to}mlp.gate_up_proj_bias");
        yield return new($"{from}mlp.experts.down_proj", [experts, width, hidden], $"{to}mlp.down_proj.weight") { StoredInputMajor = true };
        yield return new($"{from}mlp.experts.down_proj_bias", [experts, hidden], $"{to}mlp.down_proj_bias");
    }
}
