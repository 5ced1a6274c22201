using Serving.Engine.Execution;
using Serving.Engine.Model;
using Serving.Engine.Scheduling;
using static Serving.Engine.Tests.Scheduling.SchedulerTestKit;

namespace Serving.Engine.Tests.Model;

public sealed class StepInputsTests
{
    [Fact]
    public void SlotsBlockTablesAndLengthsFollowTheBlockTables()
    {
        // StepInputs' picture: A decodes its 6th token (blocks 7, 2), B prefills 3 tokens (block 3); block size 4
        var a = new StepSequence([10, 11, 12, 13, 14, 15], 5, 1, [7, 2]);
        var b = new StepSequence([20, 21, 22], 0, 3, [3, 9]);

        var inputs = StepInputs.Build([a, b], blockSize: 4);

        Assert.Equal([15, 20, 21, 22], inputs.TokenIds);
        Assert.Equal([5, 0, 1, 2], inputs.Positions);
        Assert.Equal([9, 12, 13, 14], inputs.SlotMapping);
        Assert.Equal([0, 1, 4], inputs.QueryStarts);
        Assert.Equal([6, 3], inputs.ContextLengths);
        Assert.Equal([[7, 2], [3]], inputs.BlockTables);   // tables cover the context only
        Assert.Equal([0, 3], inputs.LogitRows);
        Assert.Equal((6, 2, 3), (inputs.MaxContextLength, inputs.MaxBlocksPerSeq, inputs.LastRow(1)));
        Assert.False(inputs.IsDecode);
    }

    [Fact]
    public void TheScheduledBatchBecomesStepInputsInBatchOrder()
    {
        var scheduler = NewScheduler(blockSize: 4);
        var a = scheduler.Add(Request("a", 5, 4))[0];
        scheduler.Postprocess(scheduler.Schedule(), [42]);   // A: blocks 0, 1
        scheduler.Add(Request("b", 3, 4, firstToken: 200));

        var inputs = ModelRunner.Inputs(scheduler.Schedule(), blockSize: 4);

        Assert.Equal([42, 200, 201, 202], inputs.TokenIds);
        Assert.Equal([a.BlockTable.Blocks[1].Id * 4 + 1, 8, 9, 10], inputs.SlotMapping);
        Assert.Equal([[0, 1], [2]], inputs.BlockTables);
        Assert.Equal([0, 3], inputs.LogitRows);
    }

    /// A sequence checking two drafts: its last token and the drafts are computed, and each gives a logits row (the
    /// last token's predicts the first draft, the drafts' the next ones and the token after them).
    [Fact]
    public void DraftTokensFollowTheLastTokenAndEachGivesALogitsRow()
    {
        var a = new StepSequence([10, 11, 12, 13, 14, 15, 90, 91], 5, 3, [7, 2], NumDraftTokens: 2);
        var b = new StepSequence([20, 21, 22], 2, 1, [3]);

        var inputs = StepInputs.Build([a, b], blockSize: 4);

        Assert.Equal([15, 90, 91, 22], inputs.TokenIds);
        Assert.Equal([5, 6, 7, 2], inputs.Positions);
        Assert.Equal([9, 10, 11, 14], inputs.SlotMapping);
        Assert.Equal([0, 3, 4], inputs.QueryStarts);
        Assert.Equal([8, 3], inputs.ContextLengths);
        Assert.Equal([0, 1, 2, 3], inputs.LogitRows);
        Assert.False(inputs.IsDecode);
        Assert.Throws<ArgumentException>(() => StepInputs.Build([a with { NumDraftTokens = 3 }], 4));   // a draft needs a token before it
    }

    [Fact]
    public void APrefillChunkThatStopsShortComputesNoLogits()
    {
        var scheduler = NewScheduler(blockSize: 4, maxNumBatchedTokens: 6);
        scheduler.Add(Request("a", 10, 1));
        var inputs = ModelRunner.Inputs(scheduler.Schedule(), blockSize: 4);
        Assert.Equal(6, inputs.NumTokens);
        Assert.Empty(inputs.LogitRows);
        Assert.Equal([[0, 1]], inputs.BlockTables);
    }

    [Fact]
    public void SequencesThatDoNotFitTheirBlocksOrTokensAreRefused()
    {
        Assert.Throws<ArgumentException>(() => StepInputs.Build([], 4));
        Assert.Throws<ArgumentException>(() => StepInputs.Build([new StepSequence([1, 2, 3, 4, 5], 0, 5, [0])], 4));
        Assert.Throws<ArgumentException>(() => StepInputs.Build([new StepSequence([1, 2], 1, 2, [0])], 4));
        var inputs = StepInputs.Build([new StepSequence([1, 2], 0, 2, [5])], 4);
        Assert.Throws<ArgumentException>(() => inputs.CheckFits(numBlocks: 5));
    }
}
