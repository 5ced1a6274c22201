using Serving.Engine.KVCache;
using Serving.Engine.Pooling;

namespace Serving.Engine.Scheduling;

// Building one step: running sequences first, then waiting ones, within the token and sequence budgets.
internal sealed partial class Scheduler
{
    /// Decides what the next step computes. Never returns an empty batch while a sequence is unfinished:
    /// the oldest running sequence always gets its blocks (newer ones are preempted for it, and admission
    /// guarantees one sequence fits the whole pool), and with nothing running the waiting head fits.
    public ScheduledBatch Schedule()
    {
        var step = new StepBuilder(_options.MaxNumBatchedTokens);
        ScheduleRunning(step);
        // drafts after every running sequence's own tokens, and only in a step that preempted nothing (the pool is short)
        if (step.NumPreempted == 0)
            ScheduleDrafts(step);
        // After a preemption the pool is short: admitting new work would only preempt it again.
        if (step.NumPreempted == 0 || step.Entries.Count == 0)
            ScheduleWaiting(step);
        return new ScheduledBatch(step.Entries);
    }

    void ScheduleRunning(StepBuilder step)
    {
        for (var i = 0; i < _running.Count && step.TokenBudget > 0; i++)
        {
            var sequence = _running[i];
            var numNewTokens = ChunkOf(sequence.NumUncomputedTokens, step.TokenBudget);
            if (!TryReserveSlots(sequence, numNewTokens, step))
                break; // the sequence preempted itself: everything after it is gone too
            step.Add(sequence, numNewTokens);
        }
    }

    /// How many of a sequence's uncomputed tokens it computes now: what the token budget leaves, and no more than
    /// --long-prefill-token-threshold when set (vLLM V1's cap on one request's prefill chunk).
    int ChunkOf(int numUncomputed, int tokenBudget)
    {
        var chunk = Math.Min(numUncomputed, tokenBudget);
        return _options.LongPrefillTokenThreshold > 0 ? Math.Min(chunk, _options.LongPrefillTokenThreshold) : chunk;
    }

    /// The drafts the scheduled decoding sequences check, oldest first, with what the running sequences' own tokens
    /// left: as many as the token budget still holds, in free blocks, or else as many as the sequence's last block
    /// still holds (a draft never preempts, nor takes a block or a token a running sequence's own next tokens need;
    /// waiting sequences are admitted with what remains).
    void ScheduleDrafts(StepBuilder step)
    {
        if (_running.Count + _waiting.Count > (_options.Speculative?.DisableByBatchSize ?? int.MaxValue))
            return;   // requests arrived since the drafts were proposed
        for (var e = 0; e < step.Entries.Count && step.TokenBudget > 0; e++)
        {
            var (sequence, drafts) = (step.Entries[e].Sequence, step.Entries[e].Sequence.DraftTokenIds);
            if (drafts.Count == 0 || step.Entries[e].NumNewTokens != 1 || sequence.NumUncomputedTokens != 1)
                continue;
            if (drafts.Count > step.TokenBudget)
                drafts = drafts.Take(step.TokenBudget).ToArray();
            if (!_kvCache.TryAllocateSlots(sequence.BlockTable, sequence.NumTokens + drafts.Count))
                drafts = drafts.Take(sequence.BlockTable.Count * _kvCache.BlockSize - sequence.NumTokens).ToArray();
            if (drafts.Count > 0)
                step.AddDrafts(e, drafts);
        }
    }

    /// Gets blocks for the sequence's next tokens, preempting the last running sequences (the newest; under the
    /// priority policy the lowest priority) until they fit.
    /// False when the sequence itself had to go.
    bool TryReserveSlots(Sequence sequence, int numNewTokens, StepBuilder step)
    {
        var numTokens = sequence.NumComputedTokens + numNewTokens;
        while (!_kvCache.TryAllocateSlots(sequence.BlockTable, numTokens))
        {
            var victim = _running[^1];
            Preempt(victim);
            step.NumPreempted++;
            if (victim == sequence)
                return false;
        }
        return true;
    }

    /// Preemption by recompute: drop the KV, queue at the front of waiting. Its full blocks stay in the prefix
    /// cache until evicted, so re-admission often recomputes only the tail.
    void Preempt(Sequence sequence)
    {
        _running.Remove(sequence);
        _kvCache.Free(sequence.BlockTable);
        sequence.NumComputedTokens = 0;
        sequence.DraftTokenIds = [];
        sequence.Status = SequenceStatus.Preempted;
        Wait(sequence, preempted: true);
        _numPreemptions++;
    }

    void ScheduleWaiting(StepBuilder step)
    {
        var node = _waiting.First;
        while (node is not null && step.TokenBudget > 0 && _running.Count < _options.MaxNumSeqs)
        {
            var next = node.Next;
            if (IsReadyToAdmit(node.Value))
            {
                if (!TryAdmit(node.Value, step))
                    break; // FCFS: later requests do not overtake a head that does not fit yet
                _waiting.Remove(node);
            }
            node = next;
        }
    }

    /// A sibling (n > 1) waits until sibling 0 has computed the shared prompt once, then finds its full blocks
    /// in the prefix cache instead of computing them again. Without prefix caching siblings run independently.
    bool IsReadyToAdmit(Sequence sequence) =>
        !_kvCache.PrefixCachingEnabled || sequence.Parent is not { } parent ||
        parent.HasComputedPrompt || parent.IsFinished;

    bool TryAdmit(Sequence sequence, StepBuilder step)
    {
        var wholePrompt = NeedsWholePrompt(sequence);
        var prefix = wholePrompt ? CachedPrefix.None : _kvCache.FindCachedPrefix(sequence.BlockTable, sequence.TokenIds);
        var numNewTokens = ChunkOf(sequence.NumTokens - prefix.NumTokens, step.TokenBudget);
        if (_options.WholePromptsInOneStep && numNewTokens < sequence.NumTokens - prefix.NumTokens)
            return false;   // not in chunks: it waits for a step with room for all of it
        if (!_kvCache.TryAllocateSlots(sequence.BlockTable, prefix.NumTokens + numNewTokens, prefix))
            return false;
        if (!wholePrompt) _kvCache.RecordPrefixLookup(sequence.NumTokens, prefix.NumTokens);   // no lookup, no query
        if (sequence.Status == SequenceStatus.Waiting)
            sequence.NumCachedTokens = prefix.NumTokens;
        sequence.NumComputedTokens = prefix.NumTokens;
        sequence.Status = SequenceStatus.Running;
        Run(sequence);
        step.Add(sequence, numNewTokens);
        return true;
    }

    /// A request that wants its prompt's log-probabilities computes the whole prompt once (sibling 0, the first
    /// time), and so does an embedding pooled over more than its last token: a cached prefix would skip the positions
    /// whose logits or hidden states it needs.
    static bool NeedsWholePrompt(Sequence sequence) =>
        (sequence.Sampling.PromptLogprobs is not null && sequence.Parent is null && !sequence.HasComputedPrompt)
        || sequence.Pooling?.Type.NeedsWholePrompt() == true;

    sealed class StepBuilder(int tokenBudget)
    {
        public List<ScheduledSequence> Entries { get; } = [];
        public int TokenBudget { get; private set; } = tokenBudget;
        public int NumPreempted { get; set; }

        public void Add(Sequence sequence, int numNewTokens)
        {
            var start = sequence.NumComputedTokens;
            // an embedding's last prompt chunk samples nothing: the sequence is done once it is computed
            var samples = start + numNewTokens == sequence.NumTokens && sequence.Pooling is null;
            Entries.Add(new ScheduledSequence(sequence, start, numNewTokens, samples));
            TokenBudget -= numNewTokens;
        }

        /// The entry's sequence also checks drafts after its last token.
        public void AddDrafts(int entry, IReadOnlyList<int> drafts)
        {
            Entries[entry] = Entries[entry] with { NumNewTokens = Entries[entry].NumNewTokens + drafts.Count, DraftTokenIds = drafts };
            TokenBudget -= drafts.Count;
        }
    }
}
