using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// One decoder layer's weights as the fused path reads them: the model's own parameter tensors (no copies),
/// with projections already fused at load time so each stage is one matrix product. Linear weights are
/// (out, in) as in PyTorch; biases exist only where the checkpoint has them (qwen2's qkv, llama's attention_bias).
internal sealed record FusedLayerWeights(
    Tensor InputNorm,          // (hidden)
    Tensor QkvProj,            // ((numHeads + 2 numKVHeads) headDim, hidden) = [q_proj; k_proj; v_proj]
    Tensor? QkvBias,
    Tensor OProj,              // (hidden, numHeads headDim)
    Tensor? OBias,
    Tensor PostAttentionNorm,  // (hidden)
    Tensor GateUpProj,         // (2 ffn, hidden) = [gate_proj; up_proj]
    Tensor? GateUpBias,
    Tensor DownProj,           // (hidden, ffn)
    Tensor? DownBias);

/// The whole decoder as the fused path reads it. The tensors belong to the model that owns the parameters.
internal sealed record FusedModelWeights(
    Tensor Embedding,                       // (vocab, hidden)
    IReadOnlyList<FusedLayerWeights> Layers,
    Tensor FinalNorm,                       // (hidden)
    Tensor LmHead,                          // (vocab, hidden); the embedding itself when tied
    float RmsNormEps)
{
    /// Picks the parameters out of a Llama-family module by their checkpoint-style names
    /// (embed_tokens, layers.N.self_attn.qkv_proj, layers.N.mlp.gate_up_proj, norm, lm_head).
    public static FusedModelWeights From(nn.Module model, int numLayers, double rmsNormEps)
    {
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        Tensor? Optional(string name) => parameters.GetValueOrDefault(name);
        Tensor Required(string name) => Optional(name) ?? throw new ArgumentException($"the model has no parameter '{name}'");
        var layers = Enumerable.Range(0, numLayers).Select(i =>
        {
            var p = $"layers.{i}.";
            return new FusedLayerWeights(
                Required(p + "input_layernorm.weight"),
                Required(p + "self_attn.qkv_proj.weight"), Optional(p + "self_attn.qkv_proj.bias"),
                Required(p + "self_attn.o_proj.weight"), Optional(p + "self_attn.o_proj.bias"),
                Required(p + "post_attention_layernorm.weight"),
                Required(p + "mlp.gate_up_proj.weight"), Optional(p + "mlp.gate_up_proj.bias"),
                Required(p + "mlp.down_proj.weight"), Optional(p + "mlp.down_proj.bias"));
        }).ToList();
        var embedding = Required("embed_tokens.weight");
        return new FusedModelWeights(embedding, layers, Required("norm.weight"), Optional("lm_head.weight") ?? embedding, (float)rmsNormEps);
    }

    /// Bytes a decode step of <paramref name="numTokens"/> tokens reads from the weights: every layer and the
    /// LM head, plus one embedding row per token.
    public long DecodeBytes(int numTokens)
    {
        static long Bytes(Tensor? t) => t is null ? 0 : t.NumberOfElements * t.ElementSize;
        var layers = Layers.Sum(l => Bytes(l.InputNorm) + Bytes(l.QkvProj) + Bytes(l.QkvBias) + Bytes(l.OProj) + Bytes(l.OBias)
            + Bytes(l.PostAttentionNorm) + Bytes(l.GateUpProj) + Bytes(l.GateUpBias) + Bytes(l.DownProj) + Bytes(l.DownBias));
        return layers + Bytes(FinalNorm) + Bytes(LmHead) + numTokens * Embedding.size(1) * Embedding.ElementSize;
    }
}
