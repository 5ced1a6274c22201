namespace Serving.Engine.Pooling;

/// What one embedding request asks of its prompt's hidden states: how to pool them, whether to scale the result to
/// unit length, and how many leading dimensions to keep (Matryoshka models; null keeps all). Truncation comes
/// before normalization, as in vLLM and sentence-transformers.
public sealed record PoolingParams(PoolingType Type, bool Normalize, int? Dimensions = null)
{
    /// The rows of a step's new tokens (the prompt positions start .. start + count - 1) whose hidden states pooling
    /// reads: the last prompt token's (on the chunk that reaches it), the first's, or all of them.
    public RowRange RowsToPool(int start, int count, int promptLength) => Type switch
    {
        PoolingType.Last => start + count == promptLength ? new RowRange(count - 1, 1) : RowRange.None,
        PoolingType.Cls => start == 0 ? new RowRange(0, 1) : RowRange.None,
        _ => new RowRange(0, count),
    };
}

/// Rows First .. First + Count - 1 of a sequence's new tokens in a step.
public readonly record struct RowRange(int First, int Count)
{
    public static RowRange None => default;
}
