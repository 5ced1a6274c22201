using Serving.Engine.KVCache;

namespace Serving.Engine.Model;

/// One sequence's share of a forward step: compute tokens StartPosition .. StartPosition + NumNewTokens - 1 of
/// TokenIds, whose context (earlier tokens and these) lives in the pool blocks BlockIds, in position order.
/// ComputesLogits: the step returns logits for the last of these tokens (a prefill chunk that stops short of the
/// prompt's end samples nothing and needs none), and for each of the NumDraftTokens before it: the last
/// NumDraftTokens + 1 new tokens, when the last NumDraftTokens of them are speculative drafts to check.
/// Adapter: the index of the LoRA adapter the sequence runs with among the model's (LoadedModel.LoraAdapters), -1 none.
/// PooledRows: the new tokens (rows relative to the sequence's first new one) whose final hidden states the step
/// returns, for pooling (an embedding request's prompt).
public readonly record struct StepSequence(IReadOnlyList<int> TokenIds, int StartPosition, int NumNewTokens,
    IReadOnlyList<int> BlockIds, bool ComputesLogits = true, int Adapter = -1, int NumDraftTokens = 0,
    Pooling.RowRange PooledRows = default)
{
    /// Rows of logits the step returns for the sequence.
    public int NumLogits => ComputesLogits ? NumDraftTokens + 1 : 0;

    /// Tokens the sequence attends over after this step: everything before the new ones, and the new ones.
    public int ContextLength => StartPosition + NumNewTokens;
}

/// One forward step over a flat batch: the new tokens of several sequences, concatenated in batch order. Prefill
/// chunks and decode tokens mix freely; a sequence's new tokens are the last QueryLength of its context. Built once,
/// here, from the sequences' shares; every caller (engine, benchmark, perplexity, tests) goes through Build.
///
///   sequence A: blocks [7, 2], 5 tokens computed, decodes its 6th     block size 4
///   sequence B: blocks [3], prefills its first 3 tokens
///
///     TokenIds     [a5, b0, b1, b2]      Positions      [5, 0, 1, 2]
///     SlotMapping  [9, 12, 13, 14]       QueryStarts    [0, 1, 4]       ContextLengths [6, 3]
///     BlockTables  [[7, 2], [3]]         LogitRows      [0, 3]
///
/// (slot of position p = BlockTables[s][p / 4] * 4 + p % 4, see KVCache/SlotMapping). The step writes each new
/// token's K/V at its slot, then attends every query over its sequence's context up to its own position.
public sealed class StepInputs
{
    StepInputs(int blockSize, int[] tokenIds, int[] positions, int[] slotMapping, int[] queryStarts, int[] contextLengths,
        int[][] blockTables, int[] logitRows, int[] adapters, int[] hiddenRows)
    {
        (BlockSize, TokenIds, Positions, SlotMapping, QueryStarts) = (blockSize, tokenIds, positions, slotMapping, queryStarts);
        (ContextLengths, BlockTables, LogitRows, Adapters, HiddenRows) = (contextLengths, blockTables, logitRows, adapters, hiddenRows);
    }

    public int BlockSize { get; }
    /// (numTokens) the tokens computed this step, sequence after sequence.
    public int[] TokenIds { get; }
    /// (numTokens) position of each token in its sequence (rotary angles, causal mask).
    public int[] Positions { get; }
    /// (numTokens) pool slot that receives each token's K/V.
    public int[] SlotMapping { get; }
    /// (numSeqs + 1) first row of each sequence's tokens in the flat arrays; the last entry is numTokens.
    public int[] QueryStarts { get; }
    /// (numSeqs) tokens each sequence attends over: already computed plus new.
    public int[] ContextLengths { get; }
    /// (numSeqs)[ceil(ContextLength / BlockSize)] block ids of each sequence, covering exactly its context.
    public int[][] BlockTables { get; }
    /// (numLogits) rows whose logits the step returns, in batch order: each logit-computing sequence's last token (and
    /// the tokens before it that precede its drafts: StepSequence.NumLogits rows, in order).
    public int[] LogitRows { get; }
    /// (numHidden) rows whose final hidden states the step returns, in batch order: each sequence's PooledRows.
    public int[] HiddenRows { get; }
    /// (numSeqs) each sequence's LoRA adapter index, -1 for the base model.
    public int[] Adapters { get; }
    /// Some sequence of the step runs with a LoRA adapter.
    public bool HasAdapters => Adapters.Any(adapter => adapter >= 0);

    public int NumTokens => TokenIds.Length;
    public int NumSeqs => ContextLengths.Length;
    public int QueryLength(int seq) => QueryStarts[seq + 1] - QueryStarts[seq];
    /// Row of the sequence's last new token (its query, when it decodes).
    public int LastRow(int seq) => QueryStarts[seq + 1] - 1;
    public int MaxContextLength => ContextLengths.Max();
    public int MaxBlocksPerSeq => BlockTables.Max(table => table.Length);
    /// Every sequence brings one token: a pure decode step.
    public bool IsDecode => NumTokens == NumSeqs;

    public static StepInputs Build(IReadOnlyList<StepSequence> sequences, int blockSize)
    {
        if (sequences.Count == 0) throw new ArgumentException("a step needs at least one sequence");
        var numTokens = sequences.Sum(s => s.NumNewTokens);
        var (tokens, positions, slots) = (new int[numTokens], new int[numTokens], new int[numTokens]);
        var queryStarts = new int[sequences.Count + 1];
        var (logitRows, hiddenRows) = (new List<int>(), new List<int>());
        for (var s = 0; s < sequences.Count; s++)
        {
            var sequence = Checked(sequences[s], s, blockSize);
            var row = queryStarts[s];
            for (var i = 0; i < sequence.NumNewTokens; i++)
            {
                var position = sequence.StartPosition + i;
                (tokens[row + i], positions[row + i]) = (sequence.TokenIds[position], position);
                slots[row + i] = KVCache.SlotMapping.Slot(sequence.BlockIds, position, blockSize);
            }
            queryStarts[s + 1] = row + sequence.NumNewTokens;
            for (var i = sequence.NumLogits; i > 0; i--) logitRows.Add(queryStarts[s + 1] - i);
            for (var i = 0; i < sequence.PooledRows.Count; i++) hiddenRows.Add(row + sequence.PooledRows.First + i);
        }
        var contextLengths = sequences.Select(s => s.ContextLength).ToArray();
        var tables = sequences.Select(s => s.BlockIds.Take(KVCache.SlotMapping.BlocksFor(s.ContextLength, blockSize)).ToArray()).ToArray();
        return new StepInputs(blockSize, tokens, positions, slots, queryStarts, contextLengths, tables, [.. logitRows],
            sequences.Select(s => s.Adapter).ToArray(), [.. hiddenRows]);
    }

    /// Every block id lies inside a pool of numBlocks blocks; otherwise ArgumentException naming the sequence.
    public void CheckFits(int numBlocks)
    {
        for (var s = 0; s < NumSeqs; s++)
            foreach (var block in BlockTables[s])
                if (block < 0 || block >= numBlocks)
                    throw new ArgumentException($"sequence {s}: block id {block} outside the pool (0..{numBlocks - 1})");
    }

    static StepSequence Checked(StepSequence sequence, int s, int blockSize)
    {
        var (start, count) = (sequence.StartPosition, sequence.NumNewTokens);
        if (count < 1 || start < 0 || sequence.ContextLength > sequence.TokenIds.Count)
            throw new ArgumentException($"sequence {s}: new tokens {start}..{start + count - 1} must lie within its {sequence.TokenIds.Count} tokens");
        if (sequence.PooledRows.First < 0 || sequence.PooledRows.Count < 0 || sequence.PooledRows.First + sequence.PooledRows.Count > count)
            throw new ArgumentException($"sequence {s}: pooled rows {sequence.PooledRows} outside its {count} new tokens");
        if (sequence.NumDraftTokens < 0 || sequence.NumDraftTokens >= count)
            throw new ArgumentException($"sequence {s}: {sequence.NumDraftTokens} draft tokens among {count} new ones (drafts follow at least one token)");
        if (sequence.BlockIds.Count < KVCache.SlotMapping.BlocksFor(sequence.ContextLength, blockSize))
            throw new ArgumentException($"sequence {s}: {sequence.BlockIds.Count} blocks cannot hold {sequence.ContextLength} tokens of block size {blockSize}");
        return sequence;
    }
}
