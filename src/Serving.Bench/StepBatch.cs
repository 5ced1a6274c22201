using Serving.Engine.Model;

namespace Serving.Bench;

/// Benchmark steps over a pool of numBlocks blocks, built through the engine's StepInputs.Build. Blocks are handed
/// out in a random order, as in a pool that has run for a while, so the kernels are exercised on scattered blocks.
internal static class StepBatch
{
    /// <paramref name="numSeqs"/> sequences that each decode one token after contextLength - 1 cached ones
    /// (so each attends over contextLength tokens).
    public static StepInputs Decode(int numSeqs, int contextLength, int blockSize, int numBlocks, int vocab, Random random) =>
        Build(Enumerable.Repeat(1, numSeqs).ToArray(), Enumerable.Repeat(contextLength, numSeqs).ToArray(), blockSize, numBlocks, vocab, random);

    /// <paramref name="numSeqs"/> fresh prompts of <paramref name="promptLength"/> tokens each.
    public static StepInputs Prefill(int numSeqs, int promptLength, int blockSize, int numBlocks, int vocab, Random random) =>
        Build(Enumerable.Repeat(promptLength, numSeqs).ToArray(), Enumerable.Repeat(promptLength, numSeqs).ToArray(), blockSize, numBlocks, vocab, random);

    /// Sequences with the given query and context lengths (query ≤ context: the last queryLength positions are new).
    public static StepInputs Build(int[] queryLengths, int[] contextLengths, int blockSize, int numBlocks, int vocab, Random random) =>
        StepInputs.Build(Sequences(queryLengths, contextLengths, blockSize, numBlocks, vocab, random), blockSize);

    /// The sequences themselves: random tokens, scattered blocks (a generation reuses them step after step).
    public static StepSequence[] Sequences(int[] queryLengths, int[] contextLengths, int blockSize, int numBlocks, int vocab, Random random)
    {
        var blocksNeeded = contextLengths.Sum(c => (c + blockSize - 1) / blockSize);
        if (blocksNeeded > numBlocks)
        {
            throw new ArgumentException($"the batch needs {blocksNeeded} blocks, the pool has {numBlocks}");
        }

        var freeBlocks = Enumerable.Range(0, numBlocks).OrderBy(_ => random.Next()).ToArray();
        var next = 0;
        var sequences = new StepSequence[queryLengths.Length];
        for (var s = 0; s < queryLengths.Length; s++)
        {
            var blocks = (contextLengths[s] + blockSize - 1) / blockSize;
            var tokens = Enumerable.Range(0, contextLengths[s]).Select(_ => random.Next(vocab)).ToArray();
            sequences[s] = new StepSequence(tokens, contextLengths[s] - queryLengths[s], queryLengths[s], freeBlocks[next..(next + blocks)]);
            next += blocks;
        }

        return sequences;
    }
}
