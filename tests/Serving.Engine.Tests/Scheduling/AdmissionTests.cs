using Serving.Engine.Sampling;
using static Serving.Engine.Tests.Scheduling.SchedulerTestKit;

namespace Serving.Engine.Tests.Scheduling;

public sealed class AdmissionTests
{
    [Fact]
    public void ARequestThatCouldNeverFitInTheWholePoolIsRefused()
    {
        var scheduler = NewScheduler(numBlocks: 4, blockSize: 4, maxModelLen: 128);
        var error = Assert.Throws<InvalidRequestException>(() => scheduler.Add(Request("r", promptLength: 10, maxTokens: 10)));
        Assert.Contains("needs 5 KV blocks of 4 tokens", error.Message);
        Assert.Contains("has 4 blocks (16 tokens)", error.Message);

        scheduler.Add(Request("fits", promptLength: 10, maxTokens: 6)); // exactly the whole pool
        Assert.Single(scheduler.Waiting);
    }

    [Fact]
    public void ALiveRequestIdCannotBeReusedButAFinishedOneCan()
    {
        var engine = new SimulatedEngine(NewScheduler());
        engine.Scheduler.Add(Request("same", 3, 2));
        Assert.Throws<InvalidRequestException>(() => engine.Scheduler.Add(Request("same", 3, 2)));
        engine.RunUntilIdle();
        Assert.Single(engine.Scheduler.Add(Request("same", 3, 2)));
    }

    [Fact]
    public void NSequencesAreQueuedInIndexOrder()
    {
        var scheduler = NewScheduler();
        var sequences = scheduler.Add(Request("r", 5, 2, n: 3));
        Assert.Equal([0, 1, 2], sequences.Select(s => s.Index));
        Assert.Null(sequences[0].Parent);
        Assert.All(sequences.Skip(1), s => Assert.Same(sequences[0], s.Parent));
        Assert.Equal(sequences, scheduler.Waiting);
    }
}
