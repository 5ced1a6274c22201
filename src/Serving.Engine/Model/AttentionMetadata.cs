using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Sequences that attend together. Decode sequences (one new token each) form one group, padded to the longest
/// context; each prefill chunk is a group of its own. So no query is ever padded: a group is either
/// (numSeqs, 1 query) or (1 sequence, queryLength queries).
internal sealed record AttentionGroup(
    Tensor? TokenIndices,  // (numSeqs) int64 rows of the flat batch (decode groups); null for a prefill chunk
    int TokenStart,        // first row of the flat batch (prefill chunk)
    int NumSeqs,
    int QueryLength,
    Tensor BlockTables,    // (numSeqs, numBlocks) int64, padded with block 0 (masked)
    Tensor Hidden);        // (numSeqs, 1, 1, queryLength, numBlocks * blockSize) bool, true where the key is not visible

/// The per-step tensors every layer shares, built once from BatchInputs.
internal sealed record AttentionMetadata(
    Tensor SlotMapping,                    // (numTokens) int64
    IReadOnlyList<AttentionGroup> Groups)
{
    public static AttentionMetadata Build(BatchInputs inputs, int blockSize, Device device)
    {
        var slots = tensor(inputs.SlotMapping.Select(slot => (long)slot).ToArray(), device: device);
        var groups = new List<AttentionGroup>();
        var decode = new List<int>();
        var starts = new int[inputs.NumSeqs];
        for (int s = 0, token = 0; s < inputs.NumSeqs; token += inputs.QueryLengths[s], s++)
        {
            starts[s] = token;
            if (inputs.QueryLengths[s] == 1) decode.Add(s);
            else groups.Add(PrefillGroup(inputs, s, token, blockSize, device));
        }
        if (decode.Count > 0) groups.Add(DecodeGroup(inputs, decode, starts, blockSize, device));
        return new AttentionMetadata(slots, groups);
    }

    /// Query i of the chunk sits at position c - q + i and sees keys 0 .. c - q + i (causal over the whole context).
    static AttentionGroup PrefillGroup(BatchInputs inputs, int s, int tokenStart, int blockSize, Device device)
    {
        var (q, c) = (inputs.QueryLengths[s], inputs.ContextLengths[s]);
        var numBlocks = (c + blockSize - 1) / blockSize;
        var table = tensor(inputs.BlockTables[s].Take(numBlocks).Select(b => (long)b).ToArray(), device: device)
            .view(1, numBlocks);
        var lastVisible = arange(c - q, c, int64, device);                        // (q)
        var keyPositions = arange(numBlocks * blockSize, int64, device);          // (numBlocks * blockSize)
        var hidden = keyPositions.unsqueeze(0) > lastVisible.unsqueeze(1);        // (q, numBlocks * blockSize)
        return new AttentionGroup(null, tokenStart, 1, q, table, hidden.view(1, 1, 1, q, -1));
    }

    /// Each decode query sees its whole context 0 .. c - 1; keys past c (padding to the longest context) are hidden.
    static AttentionGroup DecodeGroup(BatchInputs inputs, List<int> seqs, int[] starts, int blockSize, Device device)
    {
        var contexts = seqs.Select(s => inputs.ContextLengths[s]).ToArray();
        var numBlocks = (contexts.Max() + blockSize - 1) / blockSize;
        var table = new long[seqs.Count * numBlocks];                             // padding: block 0
        for (var i = 0; i < seqs.Count; i++)
            for (var b = 0; b < (contexts[i] + blockSize - 1) / blockSize; b++)
                table[i * numBlocks + b] = inputs.BlockTables[seqs[i]][b];
        var lastVisible = tensor(contexts.Select(c => (long)c - 1).ToArray(), device: device);      // (numSeqs)
        var keyPositions = arange(numBlocks * blockSize, int64, device);
        var hidden = keyPositions.unsqueeze(0) > lastVisible.unsqueeze(1);        // (numSeqs, numBlocks * blockSize)
        var rows = tensor(seqs.Select(s => (long)starts[s]).ToArray(), device: device);
        return new AttentionGroup(rows, 0, seqs.Count, 1,
            tensor(table, device: device).view(seqs.Count, numBlocks), hidden.view(seqs.Count, 1, 1, 1, -1));
    }
}
