using static Serving.Engine.Tests.Scheduling.SchedulerTestKit;

namespace Serving.Engine.Tests.Scheduling;

/// n > 1: siblings share the prompt's full blocks through the prefix cache once sibling 0 computed them.
public sealed class SiblingTests
{
    [Fact]
    public void SiblingsWaitForTheFirstPromptThenShareItsFullBlocks()
    {
        var engine = new SimulatedEngine(NewScheduler(blockSize: 4));
        var sequences = engine.Scheduler.Add(Request("r", promptLength: 10, maxTokens: 4, n: 3));

        var (first, _) = engine.Step();
        Assert.Equal([sequences[0]], first.Entries.Select(entry => entry.Sequence));

        var (second, _) = engine.Step();
        Assert.Equal(3, second.Entries.Count);
        foreach (var sibling in sequences.Skip(1))
            Assert.Equal((8, 2), (EntryOf(second, sibling).StartPosition, EntryOf(second, sibling).NumNewTokens));
        var shared = sequences[0].BlockTable.Blocks.Take(2).ToList();
        Assert.All(sequences, s => Assert.Equal(shared, s.BlockTable.Blocks.Take(2)));
        Assert.All(shared, block => Assert.Equal(3, block.RefCount));
        Assert.Equal(3, sequences.Select(s => s.BlockTable.Blocks[2]).Distinct().Count()); // private tails
        PoolInvariants.Check(engine.Scheduler);

        engine.RunUntilIdle();
        foreach (var sequence in sequences)
            Assert.Equal(SimulatedEngine.ReferenceOutput(sequence, new HashSet<int>(), 128), sequence.OutputTokenIds);
        Assert.Equal(8, sequences[1].NumCachedTokens);
        PoolInvariants.CheckAllFree(engine.Scheduler);
    }

    [Fact]
    public void WithoutPrefixCachingSiblingsRunIndependently()
    {
        var engine = new SimulatedEngine(NewScheduler(prefixCaching: false));
        var sequences = engine.Scheduler.Add(Request("r", promptLength: 10, maxTokens: 2, n: 3));
        var (first, _) = engine.Step();
        Assert.Equal(sequences, first.Entries.Select(entry => entry.Sequence));
        Assert.All(first.Entries, entry => Assert.Equal(10, entry.NumNewTokens));
        PoolInvariants.Check(engine.Scheduler);
    }

    [Fact]
    public void SiblingsOfAnAbortedOrFinishedFirstSequenceAreNotHeldBack()
    {
        var engine = new SimulatedEngine(NewScheduler(maxNumBatchedTokens: 4));
        var sequences = engine.Scheduler.Add(Request("r", promptLength: 10, maxTokens: 2, n: 2));
        engine.Step(); // sibling 0 computes 4 of 10 prompt tokens
        engine.Scheduler.Finish(sequences[0], FinishReason.Stop);
        var (batch, _) = engine.Step();
        Assert.Equal([sequences[1]], batch.Entries.Select(entry => entry.Sequence));
        engine.RunUntilIdle();
        Assert.Equal(2, sequences[1].NumOutputTokens);
    }
}
