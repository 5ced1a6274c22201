using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Sampling;

/// The steps that change logits before any token is chosen, for every row (greedy or random), in vLLM's
/// order: allowed_token_ids, bad_words, logit_bias, min_tokens, then repetition / frequency / presence penalties.
/// Each works on the whole batch in place with one or two tensor ops; a step no row asks for costs nothing.
internal static class LogitsProcessors
{
    /// logits: (numSeqs, vocab) float32, changed in place.
    public static void Apply(Tensor logits, IReadOnlyList<SamplingState> rows)
    {
        ApplyAllowedTokenIds(logits, rows);
        ApplyBadWords(logits, rows);
        ApplyLogitBias(logits, rows);
        ApplyMinTokens(logits, rows);
        ApplyPenalties(logits, rows);
    }

    /// Every token outside a row's allowed_token_ids gets -inf.
    public static void ApplyAllowedTokenIds(Tensor logits, IReadOnlyList<SamplingState> rows)
    {
        for (var row = 0; row < rows.Count; row++)
        {
            if (rows[row].Params.AllowedTokenIds is not { } allowed)
            {
                continue;
            }
            using var scope = NewDisposeScope();
            var outside = ones(logits.size(1), dtype: ScalarType.Bool, device: logits.device);
            outside.index_put_(HeldScalars.False, tensor(allowed.Select(id => (long)id).ToArray(), device: logits.device));
            logits[row].masked_fill_(outside, HeldScalars.MinusInfinity);
        }
    }

    /// The tokens a row's bad words ban after its output so far get -inf.
    public static void ApplyBadWords(Tensor logits, IReadOnlyList<SamplingState> rows) =>
        Ban(logits, rows, row => BadWordTokens.Banned(row.BadWordTokenIds, row.OutputTokenIds));

    /// logits[row, token] += bias for every (token, bias) of the row's logit_bias.
    public static void ApplyLogitBias(Tensor logits, IReadOnlyList<SamplingState> rows)
    {
        var (rowIds, tokenIds, biases) = (new List<long>(), new List<long>(), new List<float>());
        for (var row = 0; row < rows.Count; row++)
        {
            if (rows[row].Params.LogitBias is not { } rowBias)
            {
                continue;
            }
            foreach (var (token, bias) in rowBias)
            {
                rowIds.Add(row);
                tokenIds.Add(token);
                biases.Add(bias);
            }
        }
        if (rowIds.Count == 0)
        {
            return;
        }
        using var scope = NewDisposeScope();
        var device = logits.device;
        Tensor[] index = [tensor(rowIds.ToArray(), device: device), tensor(tokenIds.ToArray(), device: device)];
        logits.index_put_(tensor(biases.ToArray(), device: device), index, accumulate: true);
    }

    /// While a row has fewer than min_tokens outputs, its stop token ids (and EOS unless ignore_eos) get -inf.
    public static void ApplyMinTokens(Tensor logits, IReadOnlyList<SamplingState> rows) =>
        Ban(logits, rows, row => row.IsBelowMinTokens ? row.TokensBlockedByMinTokens : []);

    /// logits[row, token] = -inf for every token `banned` names for a row, in one index_put over the batch.
    static void Ban(Tensor logits, IReadOnlyList<SamplingState> rows, Func<SamplingState, IEnumerable<int>> banned)
    {
        var (rowIds, tokenIds) = (new List<long>(), new List<long>());
        for (var row = 0; row < rows.Count; row++)
        {
            foreach (var token in banned(rows[row]))
            {
                rowIds.Add(row);
                tokenIds.Add(token);
            }
        }
        if (rowIds.Count == 0)
        {
            return;
        }
        using var scope = NewDisposeScope();
        var device = logits.device;
        Tensor[] index = [tensor(rowIds.ToArray(), device: device), tensor(tokenIds.ToArray(), device: device)];
        logits.index_put_(HeldScalars.MinusInfinity, index);
    }

    /// OpenAI / vLLM / transformers definitions, per row:
    ///   seen = token in prompt or output:  logit > 0 ? logit / repetition : logit * repetition
    ///   logit -= frequency * count_in_output + presence * (count_in_output > 0)
    public static void ApplyPenalties(Tensor logits, IReadOnlyList<SamplingState> rows)
    {
        var repetition = rows.Any(r => r.Params.RepetitionPenalty != 1f);
        var additive = rows.Any(r => r.Params.FrequencyPenalty != 0f || r.Params.PresencePenalty != 0f);
        if (!repetition && !additive)
        {
            return;
        }
        using var scope = NewDisposeScope();
        var vocab = logits.shape[1];
        // Rows that do not use a penalty contribute no tokens, so their counts stay zero (cheaper, same result).
        var outputCounts = TokenCounts(rows, r => PenalizesOutput(r.Params) ? r.OutputTokenIds : [], vocab,
            logits.device); // (numSeqs, vocab)
        if (repetition)
        {
            var inPrompt = TokenCounts(rows, r => r.Params.RepetitionPenalty != 1f ? r.PromptTokenIds : [],
                vocab, logits.device).gt(HeldScalars.Zero); // (numSeqs, vocab)
            var seen = inPrompt.logical_or(outputCounts.gt(HeldScalars.Zero));
            var penalty = RowParameter(rows, p => p.RepetitionPenalty, logits.device); // (numSeqs, 1)
            var penalized = where(logits.gt(HeldScalars.Zero), logits / penalty, logits * penalty);
            // an extreme penalty (1e-38 is valid) must not overflow a finite logit to infinity, whose softmax is NaN
            penalized = where(logits.isfinite(), penalized.clamp(HeldScalars.SmallestLogit, HeldScalars.LargestLogit), logits);
            logits.copy_(where(seen, penalized, logits));
        }
        if (additive)
        {
            var frequency = RowParameter(rows, p => p.FrequencyPenalty, logits.device); // (numSeqs, 1)
            var presence = RowParameter(rows, p => p.PresencePenalty, logits.device); // (numSeqs, 1)
            logits.sub_((frequency * outputCounts).add(presence * outputCounts.gt(HeldScalars.Zero).to(ScalarType.Float32), HeldScalars.One));
        }
    }

    static bool PenalizesOutput(SamplingParams p) =>
        p.RepetitionPenalty != 1f || p.FrequencyPenalty != 0f || p.PresencePenalty != 0f;

    /// (numSeqs, 1) float32 column of one parameter, to broadcast over the vocabulary.
    static Tensor RowParameter(IReadOnlyList<SamplingState> rows, Func<SamplingParams, float> select,
        Device device) => Sampler.ParameterColumn(rows.Select(r => r.Params), select, device);

    /// (numSeqs, vocab) float32: how often each token occurs in each row's selected token list. The ragged
    /// lists are padded with the id `vocab` into one extra bin that is dropped afterwards.
    static Tensor TokenCounts(IReadOnlyList<SamplingState> rows,
        Func<SamplingState, IReadOnlyList<int>> select, long vocab, Device device)
    {
        var lists = rows.Select(select).ToArray();
        var width = Math.Max(1, lists.Max(l => l.Count));
        var padded = new long[rows.Count * width];
        Array.Fill(padded, vocab);
        for (var row = 0; row < lists.Length; row++)
        {
            for (var i = 0; i < lists[row].Count; i++)
            {
                padded[row * width + i] = lists[row][i];
            }
        }
        var index = tensor(padded, [rows.Count, width], device: device); // (numSeqs, width)
        var counts = zeros([rows.Count, vocab + 1], ScalarType.Float32, device); // (numSeqs, vocab + 1)
        counts.scatter_add_(1, index, ones_like(index, ScalarType.Float32));
        return counts[.., ..(int)vocab];
    }
}
