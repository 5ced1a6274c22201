using Serving.Engine.Weights;

namespace Serving.Engine.Distributed;

/// How a parameter of the decoder is split over the ranks (Megatron-LM's scheme, as gpt-fast's tp.py names it per
/// module).
internal enum ParallelStyle
{
    /// Every rank holds all of it: the norms (input, post-attention, final).
    Replicated,
    /// The q/k norms: a weight per head, (heads, head_dim), splits as the heads do (Command R+'s); one that every head
    /// shares, (head_dim), is whole on every rank (qwen3's).
    HeadNorms,
    /// Column parallel: each rank holds its heads' (or its ffn slice's) output rows: qkv_proj, gate_up_proj (up_proj without a gate).
    OutputRows,
    /// Row parallel: each rank holds the input columns that meet its heads (or ffn slice); the outputs are partial
    /// sums, added by an all-reduce: o_proj, down_proj.
    InputColumns,
    /// The bias of a row-parallel layer: added once, by rank 0, before the all-reduce.
    FirstRankOnly,
    /// Vocabulary parallel: each rank holds ceil(V / N) rows: embed_tokens (lookups summed by an all-reduce) and
    /// lm_head (logits gathered).
    Vocabulary,
}

/// The style of each parameter of ../Model/CausalLM.cs, by its name (the model's own names, fixed by the decoder's
/// ComponentName attributes, not the checkpoint's).
internal static class ShardingRules
{
    public static ParallelStyle StyleOf(string parameterName) => parameterName switch
    {
        "embed_tokens.weight" or "lm_head.weight" or "lm_head.bias" => ParallelStyle.Vocabulary,
        _ when Ends(parameterName, "self_attn.qkv_proj.weight", "self_attn.qkv_proj.bias", "mlp.gate_up_proj.weight", "mlp.gate_up_proj.bias",
            "mlp.up_proj.weight", "mlp.up_proj.bias")
            => ParallelStyle.OutputRows,
        _ when Ends(parameterName, "self_attn.o_proj.weight", "mlp.down_proj.weight") => ParallelStyle.InputColumns,
        _ when Ends(parameterName, "self_attn.o_proj.bias", "mlp.down_proj.bias") => ParallelStyle.FirstRankOnly,
        _ when Ends(parameterName, "self_attn.q_norm.weight", "self_attn.k_norm.weight") => ParallelStyle.HeadNorms,
        _ => ParallelStyle.Replicated,
    };

    /// What the input columns of a row-parallel layer meet: o_proj reads the query heads, down_proj the ffn.
    public static RowKind InputKindOf(string parameterName) =>
        Ends(parameterName, "self_attn.o_proj.weight") ? RowKind.QueryHeads
        : Ends(parameterName, "mlp.down_proj.weight") ? RowKind.Gate
        : throw new InvalidOperationException($"'{parameterName}' is not a row-parallel weight");

    static bool Ends(string name, params string[] suffixes) =>
        suffixes.Any(suffix => name.EndsWith("." + suffix, StringComparison.Ordinal));
}
