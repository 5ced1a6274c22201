using Serving.Engine.Cuda;

namespace Serving.Engine.Tests.Cuda;

/// How decode attention is split over context partitions: pure arithmetic, checked without a GPU.
public sealed class DecodeAttentionPlanTests
{
    [Fact]
    public void EnoughBlocksWithoutSplittingMeansOnePartition()
    {
        var plan = DecodeAttentionPlan.Create(numSeqs: 256, maxContextLength: 2048, numKVHeads: 8, concurrentBlocks: 100);
        Assert.Equal(1, plan.NumPartitions);
        Assert.True(plan.PartitionSize >= 2048);
        Assert.Equal(0, plan.WorkspaceElements(numHeads: 32, headDim: 128));
    }

    [Theory]
    [InlineData(1, 512, 8)]
    [InlineData(1, 4097, 8)]
    [InlineData(64, 2048, 8)]
    [InlineData(3, 100, 1)]
    public void PartitionsTileTheLongestContextExactlyOnce(int numSeqs, int maxContext, int numKVHeads)
    {
        var plan = DecodeAttentionPlan.Create(numSeqs, maxContext, numKVHeads, concurrentBlocks: 792);
        Assert.Equal(0, plan.PartitionSize % DecodeAttentionPlan.Tile);
        Assert.True(plan.NumPartitions * plan.PartitionSize >= maxContext, "partitions cover the context");
        Assert.True((plan.NumPartitions - 1) * plan.PartitionSize < maxContext, "no partition is empty for the longest sequence");
    }

    [Fact]
    public void SmallBatchesAreSplitTowardsFourWavesOfBlocks()
    {
        var plan = DecodeAttentionPlan.Create(numSeqs: 64, maxContextLength: 2048, numKVHeads: 8, concurrentBlocks: 792);
        Assert.InRange(64 * 8 * plan.NumPartitions, 4 * 792, 6 * 792);
        Assert.Equal(64L * 32 * plan.NumPartitions * (128 + 2), plan.WorkspaceElements(numHeads: 32, headDim: 128));
    }
}
