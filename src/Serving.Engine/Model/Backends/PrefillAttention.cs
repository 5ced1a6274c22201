using Serving.Engine.Cuda;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace Serving.Engine.Model.Backends;

/// The CUDA backend's attention for sequences that bring several query tokens (prefill, chunked prefill) where the
/// tensor-core kernel does not run (float32 models or pools, head dims it does not take; see
/// FusedKernels.PagedPrefillAttention for the rest), through TorchSharp's scaled-dot-product attention, one sequence
/// at a time. Keys and values come from the pool (the rope
/// kernel has already written this step's), gathered by a kernel into the model dtype (dequantized for FP8 pools),
/// one KV head each: queries are grouped as (numKVHeads, groupSize x queryLength, headDim) against (numKVHeads,
/// contextLength, headDim), so K/V are never repeated per query head, with a causal mask that lets query j see
/// context positions up to its own (and, in a sliding-window layer, no further back than its window).
internal static class PrefillAttention
{
    /// qkv (N, (H + 2G) D) with q and k rotated; writes the rows of the given sequences into output (N, H D);
    /// contextSlots: every context slot of those sequences, in their order (see ContextSlots); window: the layer's
    /// sliding window (a query sees the window's last positions up to its own), null for the whole context.
    public static void Run(FusedKernels kernels, Tensor qkv, int layer, KVCache.PagedKVCache cache, StepInputs inputs,
        IReadOnlyList<int> seqs, Tensor contextSlots, Tensor output, int? window = null)
    {
        var (numHeads, numKVHeads, headDim) = (kernels.Shape.NumHeads, kernels.Shape.NumKVHeads, kernels.Shape.HeadDim);
        var scales = cache.Scales[layer];
        var contextStart = 0;
        foreach (var s in seqs)
        {
            var (queryStart, queryLength, contextLength) = (inputs.QueryStarts[s], inputs.QueryLength(s), inputs.ContextLengths[s]);
            using var scope = NewDisposeScope();
            // the positions from `seen` on: those the first query's window reaches (all of them without a window)
            var seen = window is { } w ? Math.Max(0, contextLength - queryLength - w + 1) : 0;
            var slots = contextSlots.narrow(0, contextStart + seen, contextLength - seen);
            var k = Gather(kernels, cache.Keys(layer), slots, scales[0], qkv.dtype).transpose(0, 1).unsqueeze(0);   // (1, G, C - seen, D)
            var v = Gather(kernels, cache.Values(layer), slots, scales[1], qkv.dtype).transpose(0, 1).unsqueeze(0);
            // pieces of queries small enough that SDPA's mask (G x group rows x keys) stays far below 2^31 elements
            // (past that its memory-efficient kernel's indexing overflows), or the soft-capped scores (H x rows x keys,
            // float32) within 256 MiB; each piece sees keys up to its last query
            var pieceElements = kernels.Shape.AttentionSoftcap > 0 ? 1L << 26 : 1L << 30;
            var rowsPerPiece = Math.Max(1, (int)(pieceElements / ((long)numHeads * (contextLength - seen))));
            for (var first = 0; first < queryLength; first += rowsPerPiece)
            {
                var rows = Math.Min(rowsPerPiece, queryLength - first);
                var keys = contextLength - queryLength + first + rows - seen;           // the piece's last query sees these
                var attended = Attend(qkv.narrow(0, queryStart + first, rows), k.narrow(2, 0, keys), v.narrow(2, 0, keys),
                    numHeads, numKVHeads, headDim, kernels.AttentionScale, kernels.Shape.AttentionSoftcap, window);
                output.narrow(0, queryStart + first, rows).copy_(attended);
            }
            contextStart += contextLength;
        }
    }

    // rows (Lq, (H + 2G) D): queries at the last Lq of the keys' positions; k, v (1, G, C, D) -> (Lq, H D)
    static Tensor Attend(Tensor rows, Tensor k, Tensor v, int numHeads, int numKVHeads, int headDim, double scale, double softcap, int? window)
    {
        var (queryLength, groupSize, contextLength) = ((int)rows.size(0), numHeads / numKVHeads, (int)k.size(2));
        var q = rows.narrow(1, 0, numHeads * headDim)
            .view(queryLength, numKVHeads, groupSize, headDim)
            .permute(1, 2, 0, 3).reshape(1, numKVHeads, -1, headDim);                  // (1, G, group Lq, D)
        var mask = CausalMask(queryLength, contextLength, groupSize, rows.device, window);
        var attended = softcap > 0 ? SoftCappedAttention(q, k, v, mask, scale, softcap) : Sdpa(q, k, v, mask, scale, headDim);
        return attended                                                                 // (1, G, group Lq, D)
            .view(numKVHeads, groupSize, queryLength, headDim)
            .permute(2, 0, 1, 3).reshape(queryLength, numHeads * headDim);
    }

    static Tensor Sdpa(Tensor q, Tensor k, Tensor v, Tensor mask, double scale, int headDim)
    {
        // SDPA scales by 1 / sqrt(D) (TorchSharp's takes no scale): another scale (granite's) is folded into the queries
        var sdpaScale = 1.0 / Math.Sqrt(headDim);
        if (Math.Abs(scale - sdpaScale) > 1e-7 * sdpaScale) q = HeldScalars.Multiply(q, scale / sdpaScale);
        return scaled_dot_product_attention(q, k, v, mask);
    }

    // SDPA has no soft-capping (gemma2's): the scores in the model dtype, as transformers computes them, then capped,
    // masked and normalized in float32
    static Tensor SoftCappedAttention(Tensor q, Tensor k, Tensor v, Tensor mask, double scale, double softcap)
    {
        using Scalar scaled = scale.ToScalar(), cap = softcap.ToScalar();
        var scores = q.matmul(k.transpose(-2, -1)).mul_(scaled).to_type(ScalarType.Float32).div_(cap).tanh_().mul_(cap);
        var probabilities = scores.masked_fill_(mask.logical_not(), HeldScalars.MinusInfinity).softmax(-1);
        return probabilities.to_type(v.dtype).matmul(v);
    }

    // pool rows at slots, dequantized into the model dtype: (C, G, D)
    static Tensor Gather(FusedKernels kernels, Tensor pool, Tensor slots, Tensor scale, ScalarType dtype)
    {
        var output = empty(slots.size(0), kernels.Shape.NumKVHeads, kernels.Shape.HeadDim, dtype, pool.device);
        kernels.GatherKV(pool, slots, scale, output);
        return output;
    }

    /// Every context position's pool slot of the given sequences, sequence after sequence (host side).
    public static int[] ContextSlots(StepInputs inputs, IReadOnlyList<int> seqs)
    {
        var slots = new int[seqs.Sum(s => inputs.ContextLengths[s])];
        var i = 0;
        foreach (var s in seqs)
            for (var p = 0; p < inputs.ContextLengths[s]; p++)
                slots[i++] = KVCache.SlotMapping.Slot(inputs.BlockTables[s], p, inputs.BlockSize);
        return slots;
    }

    // (group Lq, C) bool: row r is query r % Lq, at position C - Lq + r % Lq; it sees columns up to that position, and
    // with a window only the window's last ones of them.
    internal static Tensor CausalMask(int queryLength, int contextLength, int groupSize, Device device, int? window = null)
    {
        var queryPositions = HeldScalars.Range(contextLength - queryLength, contextLength, device: device).repeat(groupSize).unsqueeze(1);
        var columns = HeldScalars.Range(0, contextLength, device: device).unsqueeze(0);
        var causal = columns <= queryPositions;
        return window is { } w ? causal.logical_and(columns > HeldScalars.Subtract(queryPositions, w)) : causal;
    }
}
