using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// One decoder layer's weights as the fused path reads them: projections fused so that each step runs one
/// matrix product per stage. Linear weights are (out, in) as in PyTorch.
public sealed record FusedLayerWeights(
    Tensor InputNorm,          // (hidden)
    Tensor QkvProj,            // ((numHeads + 2 numKVHeads) headDim, hidden) = [q_proj; k_proj; v_proj]
    Tensor OProj,              // (hidden, numHeads headDim)
    Tensor PostAttentionNorm,  // (hidden)
    Tensor GateUpProj,         // (2 ffn, hidden) = [gate_proj; up_proj]
    Tensor DownProj);          // (hidden, ffn)

/// The whole decoder as the fused path reads it. The tensors belong to the caller (the model that built them).
public sealed record FusedModelWeights(
    Tensor Embedding,                       // (vocab, hidden)
    IReadOnlyList<FusedLayerWeights> Layers,
    Tensor FinalNorm,                       // (hidden)
    Tensor LmHead,                          // (vocab, hidden); the embedding itself when tied
    float RmsNormEps)
{
    /// Bytes a decode step reads from the weights: every layer and the LM head, plus one embedding row per token.
    public long DecodeBytes(int numTokens)
    {
        long Bytes(Tensor t) => t.NumberOfElements * t.ElementSize;
        var layers = Layers.Sum(l => Bytes(l.InputNorm) + Bytes(l.QkvProj) + Bytes(l.OProj) + Bytes(l.PostAttentionNorm) + Bytes(l.GateUpProj) + Bytes(l.DownProj));
        var embeddingRows = numTokens * Embedding.size(1) * Embedding.ElementSize;
        return layers + Bytes(FinalNorm) + Bytes(LmHead) + embeddingRows;
    }
}

/// One layer's slice of the paged KV pool: key and value caches, each (numBlocks, blockSize, numKVHeads, headDim).
public sealed record LayerKVCache(Tensor Keys, Tensor Values);
