using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// HunYuanDenseV1ForCausalLM (Tencent's Hunyuan dense models, 0.5B to 7B): Llama's decoder whose query and key heads take
/// an RMSNorm each after the rotary embedding (query_layernorm, key_layernorm: one head_dim weight each per layer, as
/// transformers' HunYuanDenseV1Attention always has them), usually with the rope's dynamic-alpha scaling
/// (`rope_scaling: {"type": "dynamic", "alpha": ...}`, RopeType.DynamicNtkAlpha). Cross-layer attention (use_cla) is
/// refused: transformers' dense model has none either.
internal sealed class HunyuanDense : ModelArchitecture
{
    public override string Name => "HunYuanDenseV1ForCausalLM";
    public override string ModelType => "hunyuan_v1_dense";

    /// transformers' HunYuanDenseV1Config for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode> { ["rms_norm_eps"] = 1e-5, ["bos_token_id"] = 1, ["eos_token_id"] = 2 };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json)
    {
        if (json.Bool("use_cla") == true)
            throw ModelConfigException.Unsupported(json.File, "use_cla", "true", "false (cross-layer attention is not served)");
        var attentionBias = json.Bool("attention_bias") ?? false;
        return config with { QkNorm = QkNorm.EachHead, QkNormAfterRope = true, QkvBias = attentionBias, OutputBias = attentionBias };
    }

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer).Concat(LlamaLayout.HeadNorms(config, layer, "query_layernorm", "key_layernorm")));
}
