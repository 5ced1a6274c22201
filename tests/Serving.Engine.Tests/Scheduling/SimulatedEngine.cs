using Serving.Engine.Execution;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Scheduling;

namespace Serving.Engine.Tests.Scheduling;

/// Stands in for the model runner in scheduler tests. The pool holds, per slot, a fingerprint of the prefix
/// whose K/V the slot would hold; each step checks that every sequence attends to exactly its own prefix
/// (through the step inputs' block tables), writes the new tokens' fingerprints at their slots, and
/// "samples" a token that depends only on the sequence's tokens and index, like greedy decoding. So a
/// sequence's output must equal ReferenceOutput (the sequence run alone) however it was chunked, preempted
/// or served from the prefix cache. memory > 0: the sampled token depends on the last `memory` tokens only, text
/// that repeats itself (so that prompt-lookup drafts are often right). Draft tokens (speculative decoding) are computed
/// like the sequence's own and sampled after: a row per draft, each from the tokens before it.
internal sealed class SimulatedEngine(Scheduler scheduler, int vocabSize = 64, int memory = 0)
{
    readonly ulong[] _slots = new ulong[scheduler.KVCache.NumBlocks * scheduler.KVCache.BlockSize];

    public Scheduler Scheduler { get; } = scheduler;
    public int BlockSize => Scheduler.KVCache.BlockSize;
    public int Steps { get; private set; }

    public (ScheduledBatch Batch, IReadOnlyList<SequenceOutput> Outputs) Step()
    {
        var batch = Scheduler.Schedule();
        var metadata = ModelRunner.Inputs(batch, BlockSize);
        var sampled = Execute(batch, metadata);
        Steps++;
        return (batch, Scheduler.Postprocess(batch, sampled));
    }

    /// Steps until no sequence is left; fails when that takes more than maxSteps (a livelock).
    public void RunUntilIdle(int maxSteps = 10_000)
    {
        for (var i = 0; i < maxSteps && Scheduler.HasUnfinishedSequences; i++)
            Step();
        Assert.False(Scheduler.HasUnfinishedSequences, $"work left after {maxSteps} steps");
    }

    public static int NextToken(IReadOnlyList<int> tokenIds, int index, int vocabSize, int memory = 0) =>
        NextToken(tokenIds, tokenIds.Count, index, vocabSize, memory);

    /// The token after the first count of tokenIds.
    static int NextToken(IReadOnlyList<int> tokenIds, int count, int index, int vocabSize, int memory)
    {
        var context = memory > 0 && count > memory ? tokenIds.Skip(count - memory).Take(memory).ToArray() : tokenIds.Take(count).ToArray();
        return (int)((Fingerprints(context, context.Length)[^1] ^ (ulong)index * 0x9E3779B97F4A7C15UL) % (ulong)vocabSize);
    }

    /// What a sequence generates alone, with the scheduler's stop rules (EOS, stop ids, max tokens, context).
    public static List<int> ReferenceOutput(Sequence sequence, IReadOnlySet<int> eos, int maxModelLen, int vocabSize = 64, int memory = 0)
    {
        var tokens = sequence.PromptTokenIds.ToList();
        var output = new List<int>();
        while (true)
        {
            var token = NextToken(tokens, sequence.Index, vocabSize, memory);
            tokens.Add(token);
            output.Add(token);
            var sampling = sequence.Sampling;
            var stops = (!sampling.IgnoreEos && eos.Contains(token)) || sampling.StopTokenIds.Contains(token);
            if ((stops && output.Count >= sampling.MinTokens) || output.Count >= sampling.MaxTokens || tokens.Count >= maxModelLen)
                return output;
        }
    }

    /// fingerprints[p] identifies tokens[0..p] (position p's K/V depends on exactly that prefix).
    static ulong[] Fingerprints(IReadOnlyList<int> tokenIds, int count)
    {
        var fingerprints = new ulong[count];
        var hash = 14695981039346656037UL;
        for (var p = 0; p < count; p++)
        {
            hash = (hash ^ (ulong)(tokenIds[p] + 1)) * 1099511628211UL;
            hash ^= hash >> 29;
            fingerprints[p] = hash;
        }
        return fingerprints;
    }

    List<int> Execute(ScheduledBatch batch, StepInputs metadata)
    {
        var written = new HashSet<int>();
        var sampled = new List<int>();
        for (var s = 0; s < batch.Entries.Count; s++)
        {
            var entry = batch.Entries[s];
            var tokens = entry.Sequence.TokenIds.Concat(entry.Drafts).ToArray();
            var fingerprints = Fingerprints(tokens, entry.ContextLength);
            CheckContext(entry, metadata.BlockTables[s], fingerprints);
            WriteNewTokens(entry, tokens, metadata, s, fingerprints, written);
            for (var row = 0; row < entry.NumSampledRows; row++)
                sampled.Add(NextToken(tokens, entry.Sequence.NumTokens + row, entry.Sequence.Index, vocabSize, memory));
        }
        Assert.Equal(sampled.Count, metadata.LogitRows.Length);
        return sampled;
    }

    void CheckContext(ScheduledSequence entry, int[] blockTable, ulong[] fingerprints)
    {
        Assert.Equal((entry.ContextLength + BlockSize - 1) / BlockSize, blockTable.Length);
        for (var p = 0; p < entry.StartPosition; p++)
            Assert.True(fingerprints[p] == _slots[SlotOf(blockTable, p)],
                $"{entry.Sequence} reads wrong K/V at position {p}");
    }

    void WriteNewTokens(ScheduledSequence entry, int[] tokens, StepInputs metadata, int s, ulong[] fingerprints, HashSet<int> written)
    {
        var offset = metadata.QueryStarts[s];
        var pool = Scheduler.KVCache.Pool;
        for (var i = 0; i < entry.NumNewTokens; i++)
        {
            var position = entry.StartPosition + i;
            var slot = metadata.SlotMapping[offset + i];
            Assert.Equal(position, metadata.Positions[offset + i]);
            Assert.Equal(tokens[position], metadata.TokenIds[offset + i]);
            Assert.Equal(SlotOf(metadata.BlockTables[s], position), slot);
            Assert.True(written.Add(slot), $"slot {slot} written twice in one step");
            var block = pool[slot / BlockSize];
            Assert.True(block.RefCount == 1 && block.Hash is null, $"{entry.Sequence} writes into shared or cached {block}");
            _slots[slot] = fingerprints[position];
        }
    }

    int SlotOf(int[] blockTable, int position) => SlotMapping.Slot(blockTable, position, BlockSize);
}
