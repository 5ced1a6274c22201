using Serving.Engine.Speculative;

namespace Serving.Engine.Scheduling;

// After the model ran: record the computed KV, append sampled tokens, finish sequences.
internal sealed partial class Scheduler
{
    /// Applies one executed step (an embedding request whose whole prompt is now computed is finished with
    /// FinishReason.Stop and appends nothing). sampledTokenIds holds batch.NumSampled tokens: NumSampledRows per sampling entry, in
    /// batch order. Returns one output per token appended, in order (several for a sequence whose drafts were kept);
    /// finished sequences already had their blocks freed. Sequences finished or aborted since Schedule are skipped
    /// (their tokens are dropped).
    public IReadOnlyList<SequenceOutput> Postprocess(ScheduledBatch batch, IReadOnlyList<int> sampledTokenIds)
    {
        if (sampledTokenIds.Count != batch.NumSampled)
            throw new ArgumentException(
                $"{sampledTokenIds.Count} sampled tokens for {batch.NumSampled} sampled rows", nameof(sampledTokenIds));
        var outputs = new List<SequenceOutput>();
        var next = 0;
        foreach (var entry in batch.Entries)
        {
            var first = next;
            next += entry.NumSampledRows;
            var sequence = entry.Sequence;
            // Finished or aborted since Schedule, or this batch was already applied: nothing to record.
            if (sequence.Status != SequenceStatus.Running || sequence.NumComputedTokens != entry.StartPosition)
                continue;
            if (!entry.SamplesToken)
            {
                RecordComputed(entry, entry.NumNewTokens);
                if (sequence.Pooling is not null && sequence.NumComputedTokens == sequence.NumTokens)
                    Finish(sequence, FinishReason.Stop);   // an embedding's prompt is computed: it is pooled, and done
                continue;
            }
            var accepted = DraftVerification.NumAccepted(entry.Drafts, sampledTokenIds, first);
            var outputsBefore = sequence.NumOutputTokens;
            var (appended, reason) = AppendSampled(sequence, sampledTokenIds, first, accepted + 1, outputs);
            // kept: the drafts appended before a stop ended the sequence; their K/V was computed this step, and the last
            // token appended is the next step's input
            var kept = Math.Min(appended, accepted);
            _speculation?.Record(entry.Drafts.Count, kept);
            sequence.LastCheck = (outputsBefore, kept);
            RecordComputed(entry, entry.NumKnownTokens + kept);
            if (reason is { } finishReason)
                Finish(sequence, finishReason);
            else
            {
                if (entry.Drafts.Count > kept)
                    _kvCache.FreeBeyond(sequence.BlockTable, sequence.NumTokens);   // blocks held only by refused drafts
                ProposeDrafts(sequence);
            }
        }
        return outputs;
    }

    /// numComputed: the entry's tokens whose K/V now counts (its own, and the drafts kept).
    void RecordComputed(ScheduledSequence entry, int numComputed)
    {
        var sequence = entry.Sequence;
        sequence.MarkComputed(entry.StartPosition + numComputed);
        _kvCache.CacheFullBlocks(sequence.BlockTable, sequence.TokenIds, sequence.NumComputedTokens);
        _kvCache.ReleaseOutsideWindow(sequence.BlockTable, sequence.NumComputedTokens);
        _numComputedTokens += numComputed;
    }

    /// Appends sampled[first..first + count) until one ends the sequence; returns how many, and why it ended.
    (int Appended, FinishReason? Reason) AppendSampled(Sequence sequence, IReadOnlyList<int> sampled, int first, int count,
        List<SequenceOutput> outputs)
    {
        for (var i = 0; i < count; i++)
        {
            var tokenId = sampled[first + i];
            sequence.AppendToken(tokenId);
            _numGeneratedTokens++;
            var reason = StopReasonOf(sequence, tokenId);
            outputs.Add(new SequenceOutput(sequence, tokenId, reason, first + i, sequence.NumOutputTokens));
            if (reason is not null)
                return (i + 1, reason);
        }
        return (count, null);
    }

    /// The drafts the sequence's next step checks (none without --speculative-config, when its sampling does not allow
    /// them, or while more sequences are running or waiting than disable_by_batch_size): no more than could be appended
    /// before max_tokens or the model's context ends it.
    void ProposeDrafts(Sequence sequence)
    {
        if (_options.Speculative is not { } config || _drafts is null || _running.Count + _waiting.Count > (config.DisableByBatchSize ?? int.MaxValue) ||
            !DraftVerification.CanSpeculate(sequence.Sampling, sequence.NumOutputTokens))
        {
            sequence.DraftTokenIds = [];
            return;
        }
        var room = Math.Min(sequence.Sampling.MaxTokens - sequence.NumOutputTokens, _options.MaxModelLen - sequence.NumTokens) - 1;
        sequence.DraftTokenIds = _drafts.Propose(sequence.TokenSpan(), sequence.Salt, Math.Min(room, config.NumSpeculativeTokens));
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
