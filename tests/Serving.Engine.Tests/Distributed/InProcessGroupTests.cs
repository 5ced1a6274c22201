using Serving.Engine.Distributed;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Distributed;

/// The CPU stand-in for NCCL: ranks are threads; every rank gets the same sum, the gather is in rank order, and an
/// aborted group releases the ranks that wait in it.
public sealed class InProcessGroupTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void AllReduceGivesEveryRankTheSameSum(int size)
    {
        using var group = new InProcessGroup(size);
        var inputs = Enumerable.Range(0, size).Select(rank => RankValues(rank)).ToArray();
        var expected = inputs.Aggregate((float[])new float[inputs[0].Length], (sum, values) => sum.Zip(values, (a, b) => a + b).ToArray());
        var results = OnEveryRank(group, communicator =>
        {
            using var x = tensor(inputs[communicator.Rank]);
            communicator.AllReduce(x);
            return x.data<float>().ToArray();
        });
        Assert.All(results, result => Assert.Equal(results[0], result));   // the same bits on every rank
        Assert.All(results[0].Zip(expected), pair => Assert.Equal(pair.Second, pair.First, 1e-5f));
    }

    [Fact]
    public void AllGatherStacksTheRanksInRankOrder()
    {
        using var group = new InProcessGroup(3);
        var results = OnEveryRank(group, communicator =>
        {
            using var x = ones(2, 2) * (float)communicator.Rank;
            using var all = empty(3, 2, 2);
            communicator.AllGather(x, all);
            return all.data<float>().ToArray();
        });
        float[] expected = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2];
        Assert.All(results, result => Assert.Equal(expected, result));
    }

    [Fact]
    public void AnAbortReleasesTheRanksWaitingForAFailedOne()
    {
        using var group = new InProcessGroup(3);
        var waiting = Enumerable.Range(1, 2).Select(rank => Task.Run(() =>
        {
            using var x = ones(4);
            group.Ranks[rank].AllReduce(x);   // rank 0 never comes
        })).ToArray();
        Thread.Sleep(50);
        group.Ranks[0].Abort();
        foreach (var task in waiting)
            Assert.IsType<TensorParallelAbortedException>(Assert.Throws<AggregateException>(() => task.Wait(TimeSpan.FromSeconds(10))).InnerException);
    }

    static float[] RankValues(int rank) => Enumerable.Range(0, 64).Select(i => MathF.Sin(i * 0.37f + rank) * (rank + 1)).ToArray();

    static T[] OnEveryRank<T>(InProcessGroup group, Func<ICommunicator, T> work)
    {
        var tasks = group.Ranks.Select(communicator => Task.Factory.StartNew(() => work(communicator), TaskCreationOptions.LongRunning)).ToArray();
        Assert.True(Task.WaitAll(tasks, TimeSpan.FromSeconds(20)), "a collective did not complete");
        return tasks.Select(task => task.Result).ToArray();
    }
}
