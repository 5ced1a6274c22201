namespace Serving.Engine.Model;

/// One forward step over a flat batch: the new tokens of several sequences, concatenated in sequence order.
/// Prefill chunks and decode tokens mix freely; a sequence's new tokens are the last QueryLength of its context.
///
///   sequence s, ContextLength c, QueryLength q:   context positions 0 .. c-q-1 are already in the pool,
///                                                  c-q .. c-1 are the new tokens written this step.
///   BlockTables[s] = [b0, b1, ...]:  context position p lives in pool slot b(p / blockSize) * blockSize + p % blockSize
///   SlotMapping[t] = that slot for new token t (so the step writes token t's K/V there before attending).
public sealed record BatchInputs(
    int[] TokenIds,        // (numTokens) new tokens of all sequences, concatenated in sequence order
    int[] Positions,       // (numTokens) position of each token within its sequence
    int[] QueryLengths,    // (numSeqs) new tokens per sequence this step (prefill chunk or 1 for decode)
    int[] ContextLengths,  // (numSeqs) tokens in the KV cache for the sequence after this step (earlier + new)
    int[] SlotMapping,     // (numTokens) pool slot = blockId * blockSize + offset receiving each new token's K/V
    int[][] BlockTables)   // (numSeqs)[ceil(ContextLength / blockSize)] block ids of the sequence, in order
{
    public int NumTokens => TokenIds.Length;
    public int NumSeqs => QueryLengths.Length;

    /// Checks the invariants above against a pool; throws ArgumentException naming the first violation.
    public void Validate(int blockSize, int numBlocks)
    {
        if (NumSeqs == 0) throw new ArgumentException("a batch needs at least one sequence");
        if (ContextLengths.Length != NumSeqs || BlockTables.Length != NumSeqs)
            throw new ArgumentException($"QueryLengths, ContextLengths and BlockTables must have one entry per sequence ({NumSeqs})");
        if (Positions.Length != NumTokens || SlotMapping.Length != NumTokens || QueryLengths.Sum() != NumTokens)
            throw new ArgumentException($"Positions, SlotMapping and the sum of QueryLengths must match TokenIds ({NumTokens})");
        var token = 0;
        for (var s = 0; s < NumSeqs; s++)
        {
            ValidateSequence(s, blockSize, numBlocks, token);
            token += QueryLengths[s];
        }
    }

    void ValidateSequence(int s, int blockSize, int numBlocks, int firstToken)
    {
        var (q, c) = (QueryLengths[s], ContextLengths[s]);
        if (q < 1 || c < q) throw new ArgumentException($"sequence {s}: QueryLength {q} must be >= 1 and <= ContextLength {c}");
        var table = BlockTables[s];
        if (table.Length < (c + blockSize - 1) / blockSize)
            throw new ArgumentException($"sequence {s}: {table.Length} blocks cannot hold {c} tokens of block size {blockSize}");
        foreach (var block in table)
            if (block < 0 || block >= numBlocks) throw new ArgumentException($"sequence {s}: block id {block} outside the pool (0..{numBlocks - 1})");
        for (var i = 0; i < q; i++)
        {
            var position = c - q + i;
            var t = firstToken + i;
            if (Positions[t] != position) throw new ArgumentException($"token {t} of sequence {s}: position {Positions[t]}, expected {position}");
            var slot = table[position / blockSize] * blockSize + position % blockSize;
            if (SlotMapping[t] != slot) throw new ArgumentException($"token {t} of sequence {s}: slot {SlotMapping[t]}, its block table gives {slot}");
        }
    }
}
