using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Attention over the paged KV pool with one KV head per group of query heads.
/// Query head h belongs to KV head h / groupSize (as transformers' repeat_kv orders them); instead of repeating
/// K/V per query head, the group's queries are stacked, (kvHeads, groupSize * queryLength, headDim), and
/// multiplied against their single KV head, (kvHeads, context, headDim): each KV head is read once per group.
internal sealed class PagedAttention(int numHeads, int numKVHeads, int headDim)
{
    readonly int _groupSize = numHeads / numKVHeads;
    readonly double _scale = 1.0 / Math.Sqrt(headDim);

    /// Writes the new tokens' K/V into their pool slots, then attends every query over its sequence's context.
    // q (numTokens, numHeads, headDim), k/v (numTokens, numKVHeads, headDim), pools (numBlocks, blockSize, numKVHeads, headDim)
    // -> (numTokens, numHeads * headDim)
    public Tensor Forward(Tensor q, Tensor k, Tensor v, Tensor keyPool, Tensor valuePool, AttentionMetadata meta)
    {
        keyPool.view(-1, numKVHeads, headDim).index_copy_(0, meta.SlotMapping, k);    // (numBlocks * blockSize, kvHeads, headDim)
        valuePool.view(-1, numKVHeads, headDim).index_copy_(0, meta.SlotMapping, v);
        var output = q.new_empty(q.shape[0], numHeads * headDim);
        foreach (var group in meta.Groups)
        {
            if (group.TokenIndices is { } rows)
                output.index_copy_(0, rows, Attend(q.index_select(0, rows).unsqueeze(1), keyPool, valuePool, group));
            else
                output.narrow(0, group.TokenStart, group.QueryLength)
                    .copy_(Attend(q.narrow(0, group.TokenStart, group.QueryLength).unsqueeze(0), keyPool, valuePool, group));
        }
        return output;
    }

    // q (S, Q, numHeads, headDim) -> (S * Q, numHeads * headDim)
    Tensor Attend(Tensor q, Tensor keyPool, Tensor valuePool, AttentionGroup group)
    {
        var (s, queries) = (group.NumSeqs, group.QueryLength);
        var grouped = q.view(s, queries, numKVHeads, _groupSize, headDim)
            .permute(0, 2, 3, 1, 4).reshape(s, numKVHeads, _groupSize * queries, headDim);  // (S, kvHeads, G * Q, headDim)
        var keys = Gather(keyPool, group).permute(0, 2, 3, 1);                                // (S, kvHeads, headDim, ctx)
        var values = Gather(valuePool, group).permute(0, 2, 1, 3);                            // (S, kvHeads, ctx, headDim)
        var scores = matmul(grouped, keys).mul_(_scale);                                      // (S, kvHeads, G * Q, ctx)
        var context = scores.shape[3];
        // the causal mask is the same for every query head of a group: broadcast it over kvHeads and G
        scores = scores.view(s, numKVHeads, _groupSize, queries, context)
            .masked_fill(group.Hidden, double.NegativeInfinity)
            .view(s, numKVHeads, _groupSize * queries, context);
        var probabilities = scores.softmax(-1, ScalarType.Float32).to_type(q.dtype);         // softmax in float32
        var attended = matmul(probabilities, values);                                         // (S, kvHeads, G * Q, headDim)
        return attended.view(s, numKVHeads, _groupSize, queries, headDim)
            .permute(0, 3, 1, 2, 4).reshape(s * queries, numKVHeads * _groupSize * headDim);  // heads ordered kv * G + g
    }

    /// The blocks of each sequence's table, in order: context position p is row p of the result.
    // pool (numBlocks, blockSize, kvHeads, headDim) -> (S, numBlocks * blockSize, kvHeads, headDim)
    Tensor Gather(Tensor pool, AttentionGroup group) =>
        pool.index_select(0, group.BlockTables.view(-1)).view(group.NumSeqs, -1, numKVHeads, headDim);
}
