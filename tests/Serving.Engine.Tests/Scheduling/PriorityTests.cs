using Serving.Engine.Scheduling;
using static Serving.Engine.Tests.Scheduling.SchedulerTestKit;

namespace Serving.Engine.Tests.Scheduling;

/// --scheduling-policy priority: waiting requests are admitted by (priority, arrival), and when blocks run out the
/// lowest-priority running sequence is preempted, even an older one; first-come-first-served refuses priorities.
public sealed class PriorityTests
{
    /// The step each sequence first computes in, running the engine until idle.
    static Dictionary<Sequence, int> FirstSteps(SimulatedEngine engine, IEnumerable<Sequence> sequences)
    {
        var first = new Dictionary<Sequence, int>();
        var watched = sequences.ToList();
        while (engine.Scheduler.HasUnfinishedSequences)
        {
            var (batch, _) = engine.Step();
            foreach (var entry in batch.Entries)
                if (watched.Contains(entry.Sequence)) first.TryAdd(entry.Sequence, engine.Steps);
        }
        return first;
    }

    [Fact]
    public void WaitingRequestsAreAdmittedByPriorityThenArrival()
    {
        var engine = new SimulatedEngine(NewScheduler(maxNumSeqs: 1, policy: SchedulingPolicy.Priority));
        var running = engine.Scheduler.Add(Request("running", promptLength: 4, maxTokens: 3, priority: 9))[0];
        engine.Step();
        var low = engine.Scheduler.Add(Request("low", promptLength: 4, maxTokens: 3, priority: 5))[0];
        var urgent = engine.Scheduler.Add(Request("urgent", promptLength: 4, maxTokens: 3, priority: -1))[0];
        var urgentToo = engine.Scheduler.Add(Request("urgent-too", promptLength: 4, maxTokens: 3, priority: -1))[0];
        var normal = engine.Scheduler.Add(Request("normal", promptLength: 4, maxTokens: 3))[0];
        var first = FirstSteps(engine, [low, urgent, urgentToo, normal]);
        Assert.Equal([urgent, urgentToo, normal, low], first.OrderBy(f => f.Value).Select(f => f.Key));
        Assert.True(running.IsFinished);
    }

    [Theory]
    [InlineData(SchedulingPolicy.Fcfs, "newer")]
    [InlineData(SchedulingPolicy.Priority, "older")]
    public void WhenBlocksRunOutTheLastInThePolicysOrderIsPreempted(SchedulingPolicy policy, string expectedVictim)
    {
        // six blocks of four tokens: two sequences growing to 20 tokens each cannot both keep theirs
        var engine = new SimulatedEngine(NewScheduler(numBlocks: 6, blockSize: 4, policy: policy));
        var older = engine.Scheduler.Add(Request("older", promptLength: 8, maxTokens: 12, priority: policy == SchedulingPolicy.Priority ? 1 : 0))[0];
        var newer = engine.Scheduler.Add(Request("newer", promptLength: 8, maxTokens: 12, firstToken: 300))[0];
        Sequence? victim = null;
        while (victim is null && engine.Scheduler.HasUnfinishedSequences)
        {
            engine.Step();
            victim = new[] { older, newer }.FirstOrDefault(s => s.Status == SequenceStatus.Preempted);
        }
        Assert.Equal(expectedVictim, victim?.RequestId);
        engine.RunUntilIdle();
        // both still produce exactly what they produce alone
        Assert.Equal(SimulatedEngine.ReferenceOutput(older, new HashSet<int>(), 128), older.OutputTokenIds);
        Assert.Equal(SimulatedEngine.ReferenceOutput(newer, new HashSet<int>(), 128), newer.OutputTokenIds);
    }

    [Fact]
    public void FirstComeFirstServedRefusesAPriority()
    {
        var scheduler = NewScheduler();
        var error = Assert.Throws<InvalidRequestException>(() => scheduler.Add(Request("a", promptLength: 4, maxTokens: 2, priority: 3)));
        Assert.Equal("priority", error.Param);
        Assert.Contains("--scheduling-policy priority", error.Message);
        Assert.Empty(scheduler.Waiting);
    }
}
