namespace Serving.Engine.Scheduling;

// After the model ran: record the computed KV, append sampled tokens, finish sequences.
internal sealed partial class Scheduler
{
    /// Applies one executed step. sampledTokenIds holds one token per batch.SamplingEntries, in batch order.
    /// Returns one output per sequence that got a token; finished ones already had their blocks freed.
    /// Sequences finished or aborted since Schedule are skipped (their token is dropped).
    public IReadOnlyList<SequenceOutput> Postprocess(ScheduledBatch batch, IReadOnlyList<int> sampledTokenIds)
    {
        if (sampledTokenIds.Count != batch.NumSampled)
            throw new ArgumentException(
                $"{sampledTokenIds.Count} sampled tokens for {batch.NumSampled} sampling sequences", nameof(sampledTokenIds));
        var outputs = new List<SequenceOutput>();
        var next = 0;
        foreach (var entry in batch.Entries)
        {
            int? tokenId = entry.SamplesToken ? sampledTokenIds[next++] : null;
            var sequence = entry.Sequence;
            // Finished or aborted since Schedule, or this batch was already applied: nothing to record.
            if (sequence.Status != SequenceStatus.Running || sequence.NumComputedTokens != entry.StartPosition)
                continue;
            RecordComputed(entry);
            if (tokenId is { } token)
                outputs.Add(AppendSampled(sequence, token));
        }
        return outputs;
    }

    void RecordComputed(ScheduledSequence entry)
    {
        var sequence = entry.Sequence;
        sequence.MarkComputed(entry.ContextLength);
        _kvCache.CacheFullBlocks(sequence.BlockTable, sequence.TokenIds, sequence.NumComputedTokens);
        _numComputedTokens += entry.NumNewTokens;
    }

    SequenceOutput AppendSampled(Sequence sequence, int tokenId)
    {
        sequence.AppendToken(tokenId);
        _numGeneratedTokens++;
        var reason = StopReasonOf(sequence, tokenId);
        if (reason is { } finishReason)
            Finish(sequence, finishReason);
        return new SequenceOutput(sequence, tokenId, reason);
    }

    /// Stop tokens (EOS unless ignore_eos, and stop_token_ids) count once min_tokens were generated; then
    /// max_tokens and the model's context. Stop strings are text: the engine checks them and calls Finish.
    FinishReason? StopReasonOf(Sequence sequence, int tokenId)
    {
        var sampling = sequence.Sampling;
        if (sequence.NumOutputTokens >= sampling.MinTokens &&
            ((!sampling.IgnoreEos && _options.EosTokenIds.Contains(tokenId)) || sampling.StopTokenIds.Contains(tokenId)))
            return FinishReason.Stop;
        if (sequence.NumOutputTokens >= sampling.MaxTokens || sequence.NumTokens >= _options.MaxModelLen)
            return FinishReason.Length;
        return null;
    }
}
