using static TorchSharp.torch;

namespace Serving.Engine.Sampling;

/// Log-probabilities for the rows that asked: the chosen token's and the top-N alternatives (most likely
/// first), all from log_softmax of the logits given (the sampler passes the model's raw logits).
internal static class LogprobGatherer
{
    /// logits: (numSeqs, vocab) float32; chosen: (numSeqs) int64. Entry i is null when rows[i] asked for none.
    public static TokenLogprob?[] Gather(Tensor logits, Tensor chosen, IReadOnlyList<SamplingState> rows)
    {
        var result = new TokenLogprob?[rows.Count];
        var asking = Enumerable.Range(0, rows.Count).Where(i => rows[i].Params.Logprobs is not null).ToArray();
        if (asking.Length == 0)
        {
            return result;
        }
        using var scope = NewDisposeScope();
        var index = tensor(asking.Select(i => (long)i).ToArray(), device: logits.device); // (numAsking)
        var logprobs = logits.index_select(0, index).log_softmax(-1); // (numAsking, vocab)
        var chosenIds = chosen.index_select(0, index); // (numAsking)
        var chosenLogprobs = logprobs.gather(1, chosenIds.unsqueeze(1)).squeeze(1); // (numAsking)
        var topN = (int)Math.Min(asking.Max(i => rows[i].Params.Logprobs!.Value), logits.shape[1]);
        var top = topN > 0 ? TopLogprobs(logprobs, topN) : null;
        var ids = chosenIds.cpu().data<long>().ToArray();
        var values = chosenLogprobs.cpu().data<float>().ToArray();
        for (var j = 0; j < asking.Length; j++)
        {
            var wanted = Math.Min(rows[asking[j]].Params.Logprobs!.Value, topN);
            IReadOnlyList<TopLogprob> alternatives = top is null ? [] : top[j][..wanted];
            result[asking[j]] = new TokenLogprob((int)ids[j], values[j], alternatives);
        }
        return result;
    }

    /// Per asking row, its topN most likely tokens, most likely first.
    static TopLogprob[][] TopLogprobs(Tensor logprobs, int topN)
    {
        var (values, ids) = logprobs.topk(topN, dim: -1, largest: true, sorted: true); // (numAsking, topN)
        var valueData = values.cpu().data<float>().ToArray();
        var idData = ids.cpu().data<long>().ToArray();
        var rows = (int)logprobs.shape[0];
        var top = new TopLogprob[rows][];
        for (var r = 0; r < rows; r++)
        {
            top[r] = Enumerable.Range(r * topN, topN)
                .Select(k => new TopLogprob((int)idData[k], valueData[k])).ToArray();
        }
        return top;
    }
}
