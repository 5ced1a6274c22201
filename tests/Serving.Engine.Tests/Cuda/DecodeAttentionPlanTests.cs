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
    public void SplitsStopAtOneWaveOfBlocksAndAtPartitionsOf256Tokens()
    {
        // batch 64 of GQA-8 (8 KV heads): 512 blocks already fill 264 slots, so no split
        Assert.Equal(1, DecodeAttentionPlan.Create(64, 2048, blocksPerPartition: 8, concurrentBlocks: 264, granule: 64).NumPartitions);
        // 16 sequences: two partitions' blocks (256) still run at once, three (384) would not
        var sixteen = DecodeAttentionPlan.Create(16, 2048, blocksPerPartition: 8, concurrentBlocks: 264, granule: 64);
        Assert.Equal(2, sixteen.NumPartitions);
        Assert.Equal(16L * 32 * 2 * (128 + 2), sixteen.WorkspaceElements(numHeads: 32, headDim: 128));
        // one sequence could take 33 partitions, but none shorter than 256 tokens
        var single = DecodeAttentionPlan.Create(1, 2048, blocksPerPartition: 8, concurrentBlocks: 264, granule: 64);
        Assert.Equal((8, 256), (single.NumPartitions, single.PartitionSize));
        Assert.Equal(1, DecodeAttentionPlan.Create(1, 300, blocksPerPartition: 8, concurrentBlocks: 264, granule: 64).NumPartitions);
        // MQA at batch 64 (one block per sequence and partition, 32-token granules): six partitions would fill 396
        // slots, but partitions of 512 tokens (a sixteenth of their K/V in partial output) stop it at four
        var mqa = DecodeAttentionPlan.Create(64, 2048, blocksPerPartition: 1, concurrentBlocks: 396, granule: 32,
            DecodeAttentionPlan.MinPartitionTokensFor(groupSize: 32, cacheElementBytes: 2));
        Assert.Equal((4, 512), (mqa.NumPartitions, mqa.PartitionSize));
    }

    /// The CUDA-core kernel's split (head dim 256: gemma2-9b's 8 KV heads and gemma3-4b's 4, group 2, 32-token granules,
    /// 396 blocks at once on an H100) at the shapes measured with --attention-splits: the fastest split there, or
    /// (batch 64) one within 8% of it.
    [Theory]
    [InlineData(1, 512, 8, 16)]      // measured fastest: 16 (0.72 ms; one partition 7.77)
    [InlineData(1, 2048, 8, 32)]     // 32 (1.36; 64: 1.52)
    [InlineData(8, 512, 8, 6)]       // 6 (1.97; 8: 2.41)
    [InlineData(8, 2048, 8, 6)]      // 6 (6.05)
    [InlineData(64, 2048, 8, 3)]     // 7 (43.8); 3: 44.4; one partition 64.3
    [InlineData(1, 2048, 4, 64)]     // gemma3-4b: 64 (0.78)
    [InlineData(8, 512, 4, 8)]       // 8 (1.12; 16: 1.21)
    [InlineData(8, 2048, 4, 11)]     // 11 (2.93)
    [InlineData(64, 512, 4, 3)]      // 3 (5.35)
    [InlineData(64, 2048, 4, 3)]     // 10 (18.1); 3: 18.4; one partition 25.7
    public void TheCudaCoreKernelSplitsByWavesOfLatencyBoundBlocks(int numSeqs, int maxContext, int numKVHeads, int expected)
    {
        var plan = DecodeAttentionPlan.CreateLatencyBound(numSeqs, maxContext, numKVHeads, concurrentBlocks: 396, granule: 32);
        Assert.Equal(expected, plan.NumPartitions);
        Assert.True(plan.NumPartitions * plan.PartitionSize >= maxContext && (plan.NumPartitions - 1) * plan.PartitionSize < maxContext);
        // a device that runs one block at a time gains nothing from a split
        Assert.Equal(1, DecodeAttentionPlan.CreateLatencyBound(numSeqs, maxContext, numKVHeads, concurrentBlocks: 1, granule: 32).NumPartitions);
    }

    /// A CUDA graph's grid (DecodeGraphs) holds the CUDA-core split of every eager step it may replay (any batch of its
    /// range, any context up to the longest), so a replay sums in the eager step's order; over random shapes.
    [Fact]
    public void ACudaCoreGraphsGridHoldsEveryEagerSplitOfItsBatches()
    {
        var random = new Random(7);
        int[] kvHeads = [1, 2, 4, 8, 16, 32], concurrent = [132, 264, 396, 528, 1056, 2112];
        for (var trial = 0; trial < 1000; trial++)
        {
            var (units, blocks) = (kvHeads[random.Next(kvHeads.Length)], concurrent[random.Next(concurrent.Length)]);
            var smallest = random.Next(1, 65);
            var largest = smallest + random.Next(0, 8);
            var longest = random.Next(1, 8193);
            var graph = DecodeAttentionPlan.LatencyBoundGraph(smallest, largest, longest, units, blocks, granule: 32);
            Assert.Equal(largest, graph.NumSeqs);
            Assert.True(graph.NumPartitions * graph.PartitionSize >= longest, "the grid covers the longest context");
            for (var probe = 0; probe < 8; probe++)
            {
                var (batch, context) = (random.Next(smallest, largest + 1), random.Next(1, longest + 1));
                var eager = DecodeAttentionPlan.CreateLatencyBound(batch, context, units, blocks, granule: 32);
                Assert.True(eager.NumPartitions <= graph.NumPartitions,
                    $"batch {batch} at {context} tokens splits in {eager.NumPartitions}, the graph of {smallest}..{largest} up to {longest} holds {graph.NumPartitions}");
            }
        }
    }

    [Theory]
    [InlineData(1, 2, 256)]    // MHA
    [InlineData(4, 2, 256)]    // GQA-8 of Llama-3-8B
    [InlineData(4, 1, 256)]    // same, FP8 pool
    [InlineData(32, 2, 512)]   // MQA
    [InlineData(32, 1, 1024)]  // MQA, FP8 pool
    public void LargeGroupsSplitIntoLongerPartitions(int groupSize, int cacheElementBytes, int expected) =>
        Assert.Equal(expected, DecodeAttentionPlan.MinPartitionTokensFor(groupSize, cacheElementBytes));
}
