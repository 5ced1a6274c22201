namespace Serving.Engine.Scheduling;

/// One sequence's share of a step: compute the KV of tokens [StartPosition, StartPosition + NumNewTokens).
/// SamplesToken: this reaches the sequence's last token, so the step samples its next token from the logits
/// of that position (a prefill chunk that stops short of the end samples nothing).
/// DraftTokenIds (speculative decoding): tokens proposed to follow the sequence's last one, computed in the same step
/// after it (they are the last of the NumNewTokens) and sampled after each, so that the step can keep every draft the
/// model would have sampled itself, and the token after them.
internal sealed record ScheduledSequence(Sequence Sequence, int StartPosition, int NumNewTokens, bool SamplesToken,
    IReadOnlyList<int>? DraftTokenIds = null)
{
    public IReadOnlyList<int> Drafts => DraftTokenIds ?? [];
    public int ContextLength => StartPosition + NumNewTokens;
    /// Positions computed this step whose tokens are the sequence's own (not drafts).
    public int NumKnownTokens => NumNewTokens - Drafts.Count;
    /// Tokens sampled for this entry: its last token's next, and one after each draft.
    public int NumSampledRows => SamplesToken ? 1 + Drafts.Count : 0;
    /// An embedding's new tokens whose final hidden states its pooling reads (none for generation): the one definition
    /// the model's inputs (StepInputs.HiddenRows) and the engine reading them back share.
    public Pooling.RowRange PooledRows =>
        Sequence.Pooling?.RowsToPool(StartPosition, NumNewTokens, Sequence.NumPromptTokens) ?? Pooling.RowRange.None;
}

/// What one step computes: vLLM's {sequence: number of tokens}, so prefill, prefill chunks and decode are one
/// thing. Entries are in scheduling order: running sequences first (oldest first), then newly admitted ones.
internal sealed class ScheduledBatch(IReadOnlyList<ScheduledSequence> entries)
{
    public static ScheduledBatch Empty { get; } = new([]);

    public IReadOnlyList<ScheduledSequence> Entries { get; } = entries;

    public int NumTokens { get; } = entries.Sum(entry => entry.NumNewTokens);

    public bool IsEmpty => Entries.Count == 0;

    /// Entries that sample, in batch order: Postprocess expects NumSampledRows sampled tokens per entry here.
    public IEnumerable<ScheduledSequence> SamplingEntries => Entries.Where(entry => entry.SamplesToken);

    /// Tokens the step samples: one per sampling entry, and one more per draft token.
    public int NumSampled { get; } = entries.Sum(entry => entry.NumSampledRows);
}

/// One token a step appended to a sequence, and the finish reason when it ended the sequence. Row: the sampled row
/// it came from (its log-probabilities'); a step that accepts drafts appends several tokens to one sequence, in order.
/// NumOutputTokens: the sequence's output length with this token.
internal sealed record SequenceOutput(Sequence Sequence, int TokenId, FinishReason? FinishReason, int Row = 0, int NumOutputTokens = 0);
