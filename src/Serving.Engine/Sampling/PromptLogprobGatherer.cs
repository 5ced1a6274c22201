using static TorchSharp.torch;

namespace Serving.Engine.Sampling;

/// Log-probabilities of a prompt's own tokens: the logits a prefill computes at position p predict the token at
/// p + 1, so each row gives that token's log-probability (log_softmax of the raw logits, as vLLM reports prompt
/// log-probabilities), its rank among the whole vocabulary, and the topN alternatives, most likely first.
internal static class PromptLogprobGatherer
{
    /// logits: (rows, vocab) float32; next: the token each row predicts, one per row.
    public static TokenLogprob[] Gather(Tensor logits, IReadOnlyList<int> next, int topN)
    {
        using var scope = NewDisposeScope();
        var logprobs = logits.log_softmax(-1);                                          // (rows, vocab)
        var targets = tensor(next.Select(id => (long)id).ToArray(), device: logits.device).unsqueeze(1); // (rows, 1)
        var chosen = logprobs.gather(1, targets);                                       // (rows, 1)
        var ranks = logprobs.gt(chosen).sum(1).add(HeldScalars.One, HeldScalars.One).cpu().data<long>().ToArray();    // (rows)
        var values = chosen.squeeze(1).cpu().data<float>().ToArray();
        topN = (int)Math.Min(topN, logits.shape[1]);
        var (topValues, topIds) = topN > 0 ? logprobs.topk(topN, dim: -1) : (null, null); // (rows, topN)
        var topValueData = topValues?.cpu().data<float>().ToArray() ?? [];
        var topIdData = topIds?.cpu().data<long>().ToArray() ?? [];
        return [.. Enumerable.Range(0, next.Count).Select(r => new TokenLogprob(next[r], values[r],
            [.. Enumerable.Range(r * topN, topN).Select(k => new TopLogprob((int)topIdData[k], topValueData[k]))])
        {
            Rank = (int)ranks[r],
        })];
    }
}
