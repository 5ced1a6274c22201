using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace Serving.Engine.Cuda;

/// Attention for steps where sequences bring several query tokens (prefill, chunked prefill), through
/// TorchSharp's scaled-dot-product attention, one sequence at a time. Keys and values come from the pool
/// (the rope kernel has already written this step's), gathered once per KV head: queries are grouped as
/// (numKVHeads, groupSize × queryLength, headDim) against (numKVHeads, contextLength, headDim), so K/V are
/// never repeated per query head, with a causal mask that lets query j see context positions ≤ its own.
internal static class PrefillAttention
{
    /// qkv (N, (H + 2G) D) with q and k rotated; returns (N, H D).
    /// keyCache, valueCache (numBlocks, blockSize, G, D).
    public static Tensor Run(Tensor qkv, Tensor keyCache, Tensor valueCache, FusedStepInputs inputs, int numHeads, int numKVHeads, int headDim)
    {
        var output = empty(inputs.NumTokens, numHeads * headDim, qkv.dtype, qkv.device);
        using var keys = keyCache.view(-1, numKVHeads, headDim);                       // (numSlots, G, D)
        using var values = valueCache.view(-1, numKVHeads, headDim);
        var (queryStart, contextStart) = (0, 0);
        for (var s = 0; s < inputs.NumSeqs; s++)
        {
            var (queryLength, contextLength) = (inputs.QueryLengths[s], inputs.HostContextLengths[s]);
            using var scope = NewDisposeScope();
            var slots = inputs.ContextSlots!.narrow(0, contextStart, contextLength);
            var q = qkv.narrow(0, queryStart, queryLength).narrow(1, 0, numHeads * headDim)
                .view(queryLength, numKVHeads, numHeads / numKVHeads, headDim)
                .permute(1, 2, 0, 3).reshape(1, numKVHeads, -1, headDim);              // (1, G, group Lq, D)
            var k = keys.index_select(0, slots).transpose(0, 1).unsqueeze(0);          // (1, G, C, D)
            var v = values.index_select(0, slots).transpose(0, 1).unsqueeze(0);
            var mask = CausalMask(queryLength, contextLength, numHeads / numKVHeads, qkv.device);
            var attended = scaled_dot_product_attention(q, k, v, mask)                  // (1, G, group Lq, D)
                .view(numKVHeads, numHeads / numKVHeads, queryLength, headDim)
                .permute(2, 0, 1, 3).reshape(queryLength, numHeads * headDim);
            output.narrow(0, queryStart, queryLength).copy_(attended);
            queryStart += queryLength;
            contextStart += contextLength;
        }

        return output;
    }

    // (group Lq, C) bool: row r is query r % Lq, at position C - Lq + r % Lq; it sees columns up to that position.
    private static Tensor CausalMask(int queryLength, int contextLength, int groupSize, Device device)
    {
        var queryPositions = arange(contextLength - queryLength, contextLength, device: device).repeat(groupSize).unsqueeze(1);
        return arange(contextLength, device: device).unsqueeze(0) <= queryPositions;
    }
}
