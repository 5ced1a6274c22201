using Serving.Engine.Cuda;

namespace Serving.Engine.Tests.Cuda;

/// How decode attention is split over context partitions: pure arithmetic, checked without a GPU.
public sealed class DecodeAttentionPlanTests
{
    [Fact]
    public void EnoughBlocksWithoutSplittingMeansOnePartition()
    {
        var plan = DecodeAttentionPlan.Create(numSeqs: 256, maxContextLength: 2048, blocksPerPartition: 8, concurrentBlocks: 100, granule: 64);
        Assert.Equal(1, plan.NumPartitions);
        Assert.True(plan.PartitionSize >= 2048);
        Assert.Equal(0, plan.WorkspaceElements(numHeads: 32, headDim: 128));
    }

    [Theory]
    [InlineData(1, 512, 8, 32)]
    [InlineData(1, 4097, 8, 32)]
    [InlineData(64, 2048, 8, 32)]
    [InlineData(3, 100, 1, 32)]
    [InlineData(1, 512, 8, 64)]
    [InlineData(1, 4097, 16, 64)]
    [InlineData(64, 2048, 8, 64)]
    [InlineData(3, 100, 1, 64)]
    public void PartitionsTileTheLongestContextExactlyOnce(int numSeqs, int maxContext, int numKVHeads, int granule)
    {
        var plan = DecodeAttentionPlan.Create(numSeqs, maxContext, numKVHeads, concurrentBlocks: 792, granule);
        Assert.Equal(0, plan.PartitionSize % granule);
        Assert.True(plan.NumPartitions * plan.PartitionSize >= maxContext, "partitions cover the context");
        Assert.True((plan.NumPartitions - 1) * plan.PartitionSize < maxContext, "no partition is empty for the longest sequence");
    }

    [Fact]
    public void SmallBatchesAreSplitTowardsFourWavesOfBlocks()
    {
        var plan = DecodeAttentionPlan.Create(numSeqs: 64, maxContextLength: 2048, blocksPerPartition: 8, concurrentBlocks: 792, granule: 64);
        Assert.InRange(64 * 8 * plan.NumPartitions, 4 * 792, 6 * 792);
        Assert.Equal(64L * 32 * plan.NumPartitions * (128 + 2), plan.WorkspaceElements(numHeads: 32, headDim: 128));
    }
}
