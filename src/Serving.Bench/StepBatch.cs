using Serving.Engine.Model;

namespace Serving.Bench;

/// Builds BatchInputs for benchmark steps over a pool of numBlocks blocks. Blocks are handed out in a random
/// order, as in a pool that has run for a while, so the kernels are exercised on scattered blocks.
internal static class StepBatch
{
    /// <paramref name="numSeqs"/> sequences that each decode one token after contextLength - 1 cached ones
    /// (so each attends over contextLength tokens).
    public static BatchInputs Decode(int numSeqs, int contextLength, int blockSize, int numBlocks, int vocab, Random random) =>
        Build(Enumerable.Repeat(1, numSeqs).ToArray(), Enumerable.Repeat(contextLength, numSeqs).ToArray(), blockSize, numBlocks, vocab, random);

    /// <paramref name="numSeqs"/> fresh prompts of <paramref name="promptLength"/> tokens each.
    public static BatchInputs Prefill(int numSeqs, int promptLength, int blockSize, int numBlocks, int vocab, Random random) =>
        Build(Enumerable.Repeat(promptLength, numSeqs).ToArray(), Enumerable.Repeat(promptLength, numSeqs).ToArray(), blockSize, numBlocks, vocab, random);

    /// Sequences with the given query and context lengths (query ≤ context: the last queryLength positions are new).
    public static BatchInputs Build(int[] queryLengths, int[] contextLengths, int blockSize, int numBlocks, int vocab, Random random)
    {
        var blocksNeeded = contextLengths.Sum(c => (c + blockSize - 1) / blockSize);
        if (blocksNeeded > numBlocks)
        {
            throw new ArgumentException($"the batch needs {blocksNeeded} blocks, the pool has {numBlocks}");
        }

        var freeBlocks = Enumerable.Range(0, numBlocks).OrderBy(_ => random.Next()).ToArray();
        var (tokens, positions, slots, tables, next) = (new List<int>(), new List<int>(), new List<int>(), new int[queryLengths.Length][], 0);
        for (var s = 0; s < queryLengths.Length; s++)
        {
            var blocks = (contextLengths[s] + blockSize - 1) / blockSize;
            tables[s] = freeBlocks[next..(next + blocks)];
            next += blocks;
            for (var p = contextLengths[s] - queryLengths[s]; p < contextLengths[s]; p++)
            {
                tokens.Add(random.Next(vocab));
                positions.Add(p);
                slots.Add(tables[s][p / blockSize] * blockSize + p % blockSize);
            }
        }

        return new BatchInputs([.. tokens], [.. positions], queryLengths, contextLengths, [.. slots], tables);
    }
}
