using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Architectures;

/// ExaoneForCausalLM (LG's EXAONE 3.0 and 3.5, and EXAONE Deep; their checkpoints ship the model code, which vLLM
/// builds in as this server does): Llama's decoder under GPT-2-style names (transformer.wte, transformer.h.N.ln_1,
/// attn.attention.q_proj ... out_proj, mlp.c_fc_0 / c_fc_1 / c_proj as gate / up / down, transformer.ln_f) and config
/// fields (num_layers, layer_norm_epsilon, activation_function).
internal sealed class Exaone : ModelArchitecture
{
    public override string Name => "ExaoneForCausalLM";
    public override string ModelType => "exaone";

    /// ExaoneConfig's names for the fields every family reads.
    public override IReadOnlyDictionary<string, string> FieldNames { get; } = new Dictionary<string, string>
    {
        ["num_layers"] = "num_hidden_layers", ["layer_norm_epsilon"] = "rms_norm_eps", ["activation_function"] = "hidden_act",
    };

    /// ExaoneConfig's defaults for what its configs may leave out.
    public override IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonNode> Defaults { get; } =
        new Dictionary<string, System.Text.Json.Nodes.JsonNode>
        {
            ["hidden_act"] = "silu", ["rms_norm_eps"] = 1e-5, ["max_position_embeddings"] = 2048, ["bos_token_id"] = 0, ["eos_token_id"] = 2,
            ["tie_word_embeddings"] = true,
        };

    public override ModelConfig ReadSpecifics(ModelConfig config, JsonFields json) => config;

    public override IReadOnlyList<WeightBinding> Layout(ModelConfig config) =>
        [.. LlamaLayout.Model(config, layer => LlamaLayout.Layer(config, layer)).Select(b => b with { CheckpointName = Stored(b.CheckpointName) })];

    /// Llama's tensor names as EXAONE's checkpoints spell them.
    static readonly (string Llama, string Exaone)[] TensorNames =
    [
        ("model.embed_tokens.", "transformer.wte."), ("model.norm.", "transformer.ln_f."), ("model.layers.", "transformer.h."),
        (".input_layernorm.", ".ln_1."), (".post_attention_layernorm.", ".ln_2."), (".self_attn.o_proj.", ".attn.attention.out_proj."),
        (".self_attn.", ".attn.attention."), (".mlp.gate_proj.", ".mlp.c_fc_0."), (".mlp.up_proj.", ".mlp.c_fc_1."),
        (".mlp.down_proj.", ".mlp.c_proj."),
    ];

    static string Stored(string llamaName) =>
        TensorNames.Aggregate(llamaName, (name, pair) => name.Replace(pair.Llama, pair.Exaone, StringComparison.Ordinal));
}
