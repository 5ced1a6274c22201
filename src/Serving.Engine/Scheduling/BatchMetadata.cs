namespace Serving.Engine.Scheduling;

/// The flat per-token and per-sequence metadata of one step, in batch order: what the model runner turns
/// into its BatchInputs tensors. Built right after Schedule (before Postprocess changes the sequences).
///
/// Block table -> slot mapping (block size 4). Sequence A computed 5 tokens and decodes its 6th; sequence B
/// prefills a chunk of 3 tokens starting at position 0:
///
///     A: block table [7, 2]          positions 0 1 2 3 | 4 5        pool slot = blockId * 4 + offset
///                                    block 7 ----------+ block 2
///        new token: position 5  ->  block table[5 / 4] = 2, offset 5 % 4 = 1  ->  slot 2*4+1 = 9
///     B: block table [3]             positions 0 1 2
///        new tokens: positions 0,1,2  ->  slots 12, 13, 14
///
///     TokenIds     [a5, b0, b1, b2]      Positions      [5, 0, 1, 2]
///     SlotMapping  [9, 12, 13, 14]       QueryLengths   [1, 3]
///     ContextLengths [6, 3]              BlockTables    [[7, 2], [3]]      LogitIndices [0, 3]
///
/// Attention for A reads slots of blocks 7 and 2 up to position 5 (its context), after the step writes K/V
/// of each new token at its SlotMapping entry.
internal sealed class BatchMetadata
{
    public required int BlockSize { get; init; }
    /// (numTokens) the token ids computed this step, sequence after sequence.
    public required int[] TokenIds { get; init; }
    /// (numTokens) position of each token in its sequence (RoPE and the causal mask).
    public required int[] Positions { get; init; }
    /// (numTokens) pool slot that receives each token's K/V: blockId * BlockSize + position % BlockSize.
    public required int[] SlotMapping { get; init; }
    /// (numSeqs) tokens each sequence computes now.
    public required int[] QueryLengths { get; init; }
    /// (numSeqs + 1) start of each sequence's tokens in the flat arrays; the last entry is numTokens.
    public required int[] QueryStarts { get; init; }
    /// (numSeqs) tokens each sequence attends to: already computed plus new.
    public required int[] ContextLengths { get; init; }
    /// (numSeqs)[blocks] block ids of each sequence, covering exactly its context.
    public required int[][] BlockTables { get; init; }
    /// (numSampled) flat index of the last token of each sequence that samples (the rows of logits to keep).
    public required int[] LogitIndices { get; init; }

    public int NumTokens => TokenIds.Length;
    public int NumSequences => QueryLengths.Length;
    public int MaxContextLength => ContextLengths.Length == 0 ? 0 : ContextLengths.Max();

    public static BatchMetadata Build(ScheduledBatch batch, int blockSize)
    {
        var numTokens = batch.NumTokens;
        var tokens = new int[numTokens];
        var positions = new int[numTokens];
        var slots = new int[numTokens];
        var queryStarts = new int[batch.Entries.Count + 1];
        var logitIndices = new List<int>();
        for (var s = 0; s < batch.Entries.Count; s++)
        {
            var entry = batch.Entries[s];
            var offset = queryStarts[s];
            for (var i = 0; i < entry.NumNewTokens; i++)
            {
                var position = entry.StartPosition + i;
                tokens[offset + i] = entry.Sequence.TokenIds[position];
                positions[offset + i] = position;
                slots[offset + i] = entry.Sequence.BlockTable.SlotOf(position, blockSize);
            }
            queryStarts[s + 1] = offset + entry.NumNewTokens;
            if (entry.SamplesToken)
                logitIndices.Add(queryStarts[s + 1] - 1);
        }
        return new BatchMetadata
        {
            BlockSize = blockSize, TokenIds = tokens, Positions = positions, SlotMapping = slots,
            QueryLengths = batch.Entries.Select(entry => entry.NumNewTokens).ToArray(),
            QueryStarts = queryStarts,
            ContextLengths = batch.Entries.Select(entry => entry.ContextLength).ToArray(),
            BlockTables = batch.Entries.Select(entry => ContextBlockIds(entry, blockSize)).ToArray(),
            LogitIndices = logitIndices.ToArray(),
        };
    }

    /// (numSeqs, maxBlocks) row-major block tables padded with padBlockId: a rectangular tensor for kernels
    /// that gather blocks. Padding entries lie past ContextLengths, so attention masks them out.
    public int[] PaddedBlockTables(out int maxBlocks, int padBlockId = 0)
    {
        var width = BlockTables.Length == 0 ? 0 : BlockTables.Max(table => table.Length);
        var padded = new int[BlockTables.Length * width];
        Array.Fill(padded, padBlockId);
        for (var s = 0; s < BlockTables.Length; s++)
            BlockTables[s].CopyTo(padded, s * width);
        maxBlocks = width;
        return padded;
    }

    static int[] ContextBlockIds(ScheduledSequence entry, int blockSize)
    {
        var numBlocks = (entry.ContextLength + blockSize - 1) / blockSize;
        return entry.Sequence.BlockTable.Blocks.Take(numBlocks).Select(block => block.Id).ToArray();
    }
}
