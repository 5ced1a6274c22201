using Serving.Engine.KVCache;

namespace Serving.Engine.Tests.KVCache;

public sealed class BlockHashTests
{
    [Fact]
    public void SameParentAndTokensGiveTheSameHash()
    {
        var parent = BlockHash.Compute(null, [1, 2, 3, 4]);
        Assert.Equal(BlockHash.Compute(parent, [5, 6, 7, 8]), BlockHash.Compute(parent, [5, 6, 7, 8]));
    }

    [Fact]
    public void TheChainDiffersWhenAParentDiffers()
    {
        var parentA = BlockHash.Compute(null, [1, 2, 3, 4]);
        var parentB = BlockHash.Compute(null, [1, 2, 3, 9]);
        Assert.NotEqual(parentA, parentB);
        Assert.NotEqual(BlockHash.Compute(parentA, [5, 6, 7, 8]), BlockHash.Compute(parentB, [5, 6, 7, 8]));
    }

    [Fact]
    public void AFirstBlockDiffersFromTheSameTokensAfterAParent()
    {
        var parent = BlockHash.Compute(null, [0, 0, 0, 0]);
        Assert.NotEqual(BlockHash.Compute(null, [5, 6, 7, 8]), BlockHash.Compute(parent, [5, 6, 7, 8]));
    }

    [Fact]
    public void TokenOrderAndValuesMatter()
    {
        Assert.NotEqual(BlockHash.Compute(null, [1, 2]), BlockHash.Compute(null, [2, 1]));
        Assert.NotEqual(BlockHash.Compute(null, [256]), BlockHash.Compute(null, [1]));
        Assert.NotEqual(BlockHash.Compute(null, [-1]), BlockHash.Compute(null, [int.MaxValue]));
    }
}
