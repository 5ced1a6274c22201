using Serving.Engine.Scheduling;
using static Serving.Engine.Tests.Scheduling.SchedulerTestKit;

namespace Serving.Engine.Tests.Scheduling;

public sealed class AbortTests
{
    [Fact]
    public void AbortWhileWaitingRemovesTheSequence()
    {
        var engine = new SimulatedEngine(NewScheduler(maxNumSeqs: 1));
        engine.Scheduler.Add(Request("running", 4, 8));
        var waiting = engine.Scheduler.Add(Request("waiting", 4, 8, firstToken: 200))[0];
        engine.Step();
        Assert.Equal(SequenceStatus.Waiting, waiting.Status);

        Assert.Equal([waiting], engine.Scheduler.Abort("waiting"));
        Assert.Equal(FinishReason.Abort, waiting.FinishReason);
        Assert.Empty(engine.Scheduler.Waiting);
        Assert.Equal(0, waiting.BlockTable.Count);
        PoolInvariants.Check(engine.Scheduler);
    }

    [Fact]
    public void AbortMidPrefillFreesItsBlocks()
    {
        var engine = new SimulatedEngine(NewScheduler(numBlocks: 8, blockSize: 4, maxNumBatchedTokens: 4));
        var sequence = engine.Scheduler.Add(Request("r", promptLength: 20, maxTokens: 4))[0];
        engine.Step();
        engine.Step();
        Assert.Equal(8, sequence.NumComputedTokens);
        Assert.Equal(6, engine.Scheduler.KVCache.NumFreeBlocks);

        engine.Scheduler.Abort("r");
        Assert.Equal(SequenceStatus.Finished, sequence.Status);
        Assert.Empty(engine.Scheduler.Running);
        PoolInvariants.CheckAllFree(engine.Scheduler);
    }

    [Fact]
    public void AbortWhileDecodingFreesItsBlocksAndKeepsTheOthersRunning()
    {
        var engine = new SimulatedEngine(NewScheduler(numBlocks: 16, blockSize: 4));
        var other = engine.Scheduler.Add(Request("other", 6, 10, firstToken: 300))[0];
        var decoding = engine.Scheduler.Add(Request("r", 6, 10))[0];
        for (var i = 0; i < 4; i++)
            engine.Step();
        Assert.Equal(4, decoding.NumOutputTokens);
        var freeBefore = engine.Scheduler.KVCache.NumFreeBlocks;

        engine.Scheduler.Abort("r");
        Assert.Equal(freeBefore + 3, engine.Scheduler.KVCache.NumFreeBlocks); // 9 computed + 1 input token: 3 blocks
        Assert.Equal([other], engine.Scheduler.Running);
        PoolInvariants.Check(engine.Scheduler);
        engine.RunUntilIdle();
        Assert.Equal(FinishReason.Length, other.FinishReason);
        PoolInvariants.CheckAllFree(engine.Scheduler);
    }

    [Fact]
    public void AbortBetweenScheduleAndPostprocessDropsTheSampledToken()
    {
        var scheduler = NewScheduler();
        var sequence = scheduler.Add(Request("r", 4, 4))[0];
        var batch = scheduler.Schedule();
        scheduler.Abort("r");
        Assert.Empty(scheduler.Postprocess(batch, [7]));
        Assert.Equal(0, sequence.NumOutputTokens);
        PoolInvariants.CheckAllFree(scheduler);
    }

    [Fact]
    public void AbortOfAnUnknownOrFinishedRequestDoesNothing()
    {
        var engine = new SimulatedEngine(NewScheduler());
        Assert.Empty(engine.Scheduler.Abort("nobody"));
        engine.Scheduler.Add(Request("done", 3, 1));
        engine.RunUntilIdle();
        Assert.Empty(engine.Scheduler.Abort("done"));
    }

    [Fact]
    public void AbortingARequestAbortsAllItsSiblings()
    {
        var engine = new SimulatedEngine(NewScheduler());
        var sequences = engine.Scheduler.Add(Request("r", 9, 8, n: 3));
        engine.Step();
        engine.Step();
        Assert.Equal(3, engine.Scheduler.Abort("r").Count);
        Assert.All(sequences, s => Assert.Equal(FinishReason.Abort, s.FinishReason));
        PoolInvariants.CheckAllFree(engine.Scheduler);
    }
}
