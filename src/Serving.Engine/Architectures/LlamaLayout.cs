using Serving.Engine.Config;
using Serving.Engine.Weights;
using static Serving.Engine.Weights.RowKind;

namespace Serving.Engine.Architectures;

/// Tensor names of a Hugging Face Llama checkpoint (`model.layers.N.self_attn.q_proj.weight`, ...), which llama,
/// mistral, qwen2 and qwen3 share. The model fuses q/k/v into one qkv_proj parameter and gate/up into one
/// gate_up_proj, so each projection is one matrix product; the checkpoint's separate tensors fill their rows.
internal static class LlamaLayout
{
    /// Embeddings, every layer (perLayer adds an architecture's extra tensors), the final norm and the LM head.
    public static IReadOnlyList<WeightBinding> Model(ModelConfig config, Func<int, IEnumerable<WeightBinding>> layer)
    {
        var bindings = new List<WeightBinding> { new("model.embed_tokens.weight", [config.VocabSize, config.HiddenSize], "embed_tokens.weight") };
        for (var i = 0; i < config.NumHiddenLayers; i++) bindings.AddRange(layer(i));
        bindings.Add(new("model.norm.weight", [config.HiddenSize], "norm.weight"));
        if (config.NormBias) bindings.Add(new("model.norm.bias", [config.HiddenSize], "norm.bias"));   // starcoder2's LayerNorm
        // a classifier's head is score.weight, one row per label; tied checkpoints may still carry lm_head.weight (a copy
        // of the embeddings), which is ignored
        if (config.HasScoreHead)
            bindings.Add(new("score.weight", [config.Labels.Count, config.HiddenSize], "score.weight"));
        else if (!config.TieWordEmbeddings)
        {
            bindings.Add(new("lm_head.weight", [config.VocabSize, config.HiddenSize], "lm_head.weight"));
            if (config.LmHeadBias) bindings.Add(new("lm_head.bias", [config.VocabSize], "lm_head.bias"));
        }
        return bindings;
    }

    /// The q_norm and k_norm of one layer, shaped as config.QkNorm says (ModelConfig.QkNormShape): qwen3's (which
    /// Qwen3-MoE, Gemma 3 and EXAONE 4.0 share), Command R+'s per head, olmo2's over the whole projection. A checkpoint
    /// may name them otherwise (Hunyuan's query_layernorm and key_layernorm).
    public static IEnumerable<WeightBinding> HeadNorms(ModelConfig config, int layer, string queryNorm = "q_norm", string keyNorm = "k_norm")
    {
        foreach (var (stored, name, heads) in new[] { (queryNorm, "q_norm", config.NumAttentionHeads), (keyNorm, "k_norm", config.NumKeyValueHeads) })
            yield return new($"model.layers.{layer}.self_attn.{stored}.weight", config.QkNormShape(heads), $"layers.{layer}.self_attn.{name}.weight");
    }

    /// One layer of a block that norms its sublayers' outputs instead of their inputs (olmo2's, EXAONE 4.0's): Llama's
    /// projections, post_attention_layernorm on the attention output, post_feedforward_layernorm on the MLP output,
    /// and the q/k norms.
    public static IEnumerable<WeightBinding> OutputNormedLayer(ModelConfig config, int layer)
    {
        var (from, to) = ($"model.layers.{layer}.", $"layers.{layer}.");
        return Layer(config, layer).Where(b => !b.CheckpointName.EndsWith("layernorm.weight", StringComparison.Ordinal)).Concat(
        [
            new($"{from}post_attention_layernorm.weight", [config.HiddenSize], $"{to}attention_output_norm.weight"),
            new($"{from}post_feedforward_layernorm.weight", [config.HiddenSize], $"{to}mlp_output_norm.weight"),
        ]).Concat(HeadNorms(config, layer));
    }

    /// One layer whose MLP has no gate (starcoder2's c_fc / c_proj, Nemotron's up_proj / down_proj, with biases under
    /// mlp_bias) and whose two norms carry a bias under NormBias: Llama's attention projections besides.
    public static IEnumerable<WeightBinding> UngatedLayer(ModelConfig config, int layer, string up, string down)
    {
        var (from, to) = ($"model.layers.{layer}.", $"layers.{layer}.");
        var (hidden, inter) = ((long)config.HiddenSize, (long)config.IntermediateSize);
        var bindings = Layer(config, layer).Where(b => b.CheckpointName.Contains(".self_attn.", StringComparison.Ordinal)).ToList();
        bindings.Add(new($"{from}mlp.{up}.weight", [inter, hidden], $"{to}mlp.up_proj.weight", 0, RowKind.Up));
        if (config.MlpBias) bindings.Add(new($"{from}mlp.{up}.bias", [inter], $"{to}mlp.up_proj.bias", 0, RowKind.Up));
        bindings.Add(new($"{from}mlp.{down}.weight", [hidden, inter], $"{to}mlp.down_proj.weight"));
        if (config.MlpBias) bindings.Add(new($"{from}mlp.{down}.bias", [hidden], $"{to}mlp.down_proj.bias"));
        foreach (var norm in new[] { "input_layernorm", "post_attention_layernorm" })
        {
            bindings.Add(new($"{from}{norm}.weight", [hidden], $"{to}{norm}.weight"));
            if (config.NormBias) bindings.Add(new($"{from}{norm}.bias", [hidden], $"{to}{norm}.bias"));
        }
        return bindings;
    }

    /// One layer with separate q/k/v and gate/up tensors.
    public static IEnumerable<WeightBinding> Layer(ModelConfig config, int layer)
    {
        var (from, to) = ($"model.layers.{layer}.", $"layers.{layer}.");
        var (hidden, q, kv, inter) = ((long)config.HiddenSize, (long)config.QSize, (long)config.KVSize, (long)config.IntermediateSize);
        (string Name, long Rows, long Offset, RowKind Kind)[] qkv = [("q_proj", q, 0, QueryHeads), ("k_proj", kv, q, KeyHeads), ("v_proj", kv, q + kv, ValueHeads)];
        foreach (var (name, rows, offset, kind) in qkv)
        {
            yield return new($"{from}self_attn.{name}.weight", [rows, hidden], $"{to}self_attn.qkv_proj.weight", offset, kind);
            if (config.QkvBias) yield return new($"{from}self_attn.{name}.bias", [rows], $"{to}self_attn.qkv_proj.bias", offset, kind);
        }
        yield return new($"{from}self_attn.o_proj.weight", [hidden, q], $"{to}self_attn.o_proj.weight");
        if (config.OutputBias) yield return new($"{from}self_attn.o_proj.bias", [hidden], $"{to}self_attn.o_proj.bias");
        (string Name, long Offset, RowKind Kind)[] gateUp = [("gate_proj", 0, Gate), ("up_proj", inter, Up)];
        foreach (var (name, offset, kind) in gateUp)
        {
            yield return new($"{from}mlp.{name}.weight", [inter, hidden], $"{to}mlp.gate_up_proj.weight", offset, kind);
            if (config.MlpBias) yield return new($"{from}mlp.{name}.bias", [inter], $"{to}mlp.gate_up_proj.bias", offset, kind);
        }
        yield return new($"{from}mlp.down_proj.weight", [hidden, inter], $"{to}mlp.down_proj.weight");
        if (config.MlpBias) yield return new($"{from}mlp.down_proj.bias", [hidden], $"{to}mlp.down_proj.bias");
        yield return new($"{from}input_layernorm.weight", [hidden], $"{to}input_layernorm.weight");
        yield return new($"{from}post_attention_layernorm.weight", [hidden], $"{to}post_attention_layernorm.weight");
    }
}
