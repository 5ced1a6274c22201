namespace Serving.Engine.Scheduling;

/// One sequence's share of a step: compute the KV of tokens [StartPosition, StartPosition + NumNewTokens).
/// SamplesToken: this reaches the sequence's last token, so the step samples its next token from the logits
/// of that position (a prefill chunk that stops short of the end samples nothing).
internal sealed record ScheduledSequence(Sequence Sequence, int StartPosition, int NumNewTokens, bool SamplesToken)
{
    public int ContextLength => StartPosition + NumNewTokens;
}

/// What one step computes: vLLM's {sequence: number of tokens}, so prefill, prefill chunks and decode are one
/// thing. Entries are in scheduling order: running sequences first (oldest first), then newly admitted ones.
internal sealed class ScheduledBatch(IReadOnlyList<ScheduledSequence> entries)
{
    public static ScheduledBatch Empty { get; } = new([]);

    public IReadOnlyList<ScheduledSequence> Entries { get; } = entries;

    public int NumTokens { get; } = entries.Sum(entry => entry.NumNewTokens);

    public bool IsEmpty => Entries.Count == 0;

    /// Entries that sample a token, in batch order: Postprocess expects one sampled token per entry here.
    public IEnumerable<ScheduledSequence> SamplingEntries => Entries.Where(entry => entry.SamplesToken);

    public int NumSampled { get; } = entries.Count(entry => entry.SamplesToken);
}

/// What one step did to a sequence that sampled a token: the token, and the finish reason when it ended.
internal sealed record SequenceOutput(Sequence Sequence, int TokenId, FinishReason? FinishReason);
