using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Sampling;

/// The truncations of random sampling, batched: each takes per-row parameter columns and sets the logits of
/// the tokens a row must not sample to -inf. Neutral values (top_k = vocab, top_p = 1, min_p = 0) keep every
/// token, so greedy and unfiltered rows ride along unchanged. Applied after temperature, min_p first, then
/// top-k and top-p on one ascending sort, as vLLM V1 does.
internal static class ProbabilityFilters
{
    /// logits: (numSeqs, vocab), in place. minP: (numSeqs, 1). Keeps tokens with prob >= min_p * max prob.
    public static void ApplyMinP(Tensor logits, Tensor minP)
    {
        using var scope = NewDisposeScope();
        var probs = logits.softmax(-1); // (numSeqs, vocab)
        var threshold = probs.amax([-1], keepdim: true) * minP; // (numSeqs, 1)
        logits.masked_fill_(probs.lt(threshold), HeldScalars.MinusInfinity);
    }

    /// logits: (numSeqs, vocab), in place. topK: (numSeqs, 1) int64 in [1, vocab] or null (off for all rows);
    /// topP: (numSeqs, 1) in (0, 1] or null. top-k keeps the k largest logits (and any tied with the k-th);
    /// top-p then keeps the smallest set of most likely tokens whose renormalised mass reaches top_p, and
    /// always the most likely token.
    public static void ApplyTopKTopP(Tensor logits, Tensor? topK, Tensor? topP)
    {
        if (topK is null && topP is null)
        {
            return;
        }
        using var scope = NewDisposeScope();
        var (sorted, order) = logits.sort(-1, descending: false); // (numSeqs, vocab), ascending
        var vocab = logits.shape[1];
        if (topK is not null)
        {
            using Scalar vocabSize = vocab.ToScalar(), lastToken = (vocab - 1).ToScalar();   // held through the calls (HeldScalars)
            var kthLargest = sorted.gather(1, topK.neg().add(vocabSize, HeldScalars.One).clamp(HeldScalars.Zero, lastToken)); // (numSeqs, 1)
            sorted.masked_fill_(sorted.lt(kthLargest), HeldScalars.MinusInfinity);
        }
        if (topP is not null)
        {
            // In ascending order a token is dropped when it and every less likely token together hold no
            // more than 1 - top_p of the mass: the tokens above it already reach top_p.
            var cumulative = sorted.softmax(-1).cumsum(-1); // (numSeqs, vocab)
            var drop = cumulative.le(topP.neg().add(HeldScalars.One, HeldScalars.One));   // 1 - top_p
            drop.select(1, vocab - 1).fill_(HeldScalars.False); // the most likely token always stays
            sorted.masked_fill_(drop, HeldScalars.MinusInfinity);
        }
        logits.scatter_(1, order, sorted);
    }
}
