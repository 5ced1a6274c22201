using Serving.Engine.Scheduling;
using static Serving.Engine.Tests.Scheduling.SchedulerTestKit;

namespace Serving.Engine.Tests.Scheduling;

public sealed class BatchMetadataTests
{
    [Fact]
    public void SlotsBlockTablesAndLengthsFollowTheBlockTables()
    {
        // The README's picture: A decodes its 6th token, B prefills 3 tokens; block size 4.
        var scheduler = NewScheduler(blockSize: 4);
        var a = scheduler.Add(Request("a", 5, 4))[0];
        scheduler.Postprocess(scheduler.Schedule(), [42]); // A: blocks 0, 1
        var b = scheduler.Add(Request("b", 3, 4, firstToken: 200))[0];

        var metadata = BatchMetadata.Build(scheduler.Schedule(), 4);

        Assert.Equal([a.BlockTable.Blocks[1].Id * 4 + 1], metadata.SlotMapping.Take(1));
        Assert.Equal([42, 200, 201, 202], metadata.TokenIds);
        Assert.Equal([5, 0, 1, 2], metadata.Positions);
        Assert.Equal([5, 8, 9, 10], metadata.SlotMapping);
        Assert.Equal([1, 3], metadata.QueryLengths);
        Assert.Equal([0, 1, 4], metadata.QueryStarts);
        Assert.Equal([6, 3], metadata.ContextLengths);
        Assert.Equal([[0, 1], [2]], metadata.BlockTables);
        Assert.Equal([0, 3], metadata.LogitIndices);
        Assert.Equal(6, metadata.MaxContextLength);
        Assert.Equal([0, 1, 2, 0], metadata.PaddedBlockTables(out var width));
        Assert.Equal(2, width);
        Assert.Same(b, scheduler.Running[1]);
    }

    [Fact]
    public void APrefillChunkHasNoLogitIndex()
    {
        var scheduler = NewScheduler(blockSize: 4, maxNumBatchedTokens: 6);
        scheduler.Add(Request("a", 10, 1));
        var metadata = BatchMetadata.Build(scheduler.Schedule(), 4);
        Assert.Equal(6, metadata.NumTokens);
        Assert.Empty(metadata.LogitIndices);
        Assert.Equal([[0, 1]], metadata.BlockTables);
    }

    [Fact]
    public void AnEmptyBatchGivesEmptyArrays()
    {
        var metadata = BatchMetadata.Build(ScheduledBatch.Empty, 16);
        Assert.Equal(0, metadata.NumTokens);
        Assert.Equal(0, metadata.NumSequences);
        Assert.Empty(metadata.PaddedBlockTables(out var width));
        Assert.Equal(0, width);
    }
}
