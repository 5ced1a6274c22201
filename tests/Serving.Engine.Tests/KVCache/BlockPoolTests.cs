using Serving.Engine.KVCache;

namespace Serving.Engine.Tests.KVCache;

public sealed class BlockPoolTests
{
    static BlockHash HashOf(params int[] tokens) => BlockHash.Compute(null, tokens);

    [Fact]
    public void AllocateTakesBlocksInIdOrderWithOneReference()
    {
        var pool = new BlockPool(4);
        var blocks = pool.Allocate(3);
        Assert.Equal([0, 1, 2], blocks.Select(b => b.Id));
        Assert.All(blocks, b => Assert.Equal(1, b.RefCount));
        Assert.Equal(1, pool.NumFreeBlocks);
    }

    [Fact]
    public void AllocatingMoreThanFreeThrowsAndChangesNothing()
    {
        var pool = new BlockPool(2);
        Assert.Throws<InvalidOperationException>(() => pool.Allocate(3));
        Assert.Equal(2, pool.NumFreeBlocks);
    }

    [Fact]
    public void FreeingTwiceThrowsSoRefCountsNeverGoNegative()
    {
        var pool = new BlockPool(2);
        var blocks = pool.Allocate(1);
        pool.Free(blocks);
        Assert.Equal(2, pool.NumFreeBlocks);
        Assert.Throws<InvalidOperationException>(() => pool.Free(blocks));
        Assert.Equal(0, blocks[0].RefCount);
    }

    [Fact]
    public void CachedUnreferencedBlocksAreEvictedLeastRecentlyFreedFirst()
    {
        var pool = new BlockPool(4);
        var a = pool.Allocate(2);
        var b = pool.Allocate(2);
        for (var i = 0; i < 4; i++)
            Assert.True(pool.TryCache(pool[i], HashOf(i)));

        pool.Free(Enumerable.Reverse(a)); // queue: 1, 0
        pool.Free(Enumerable.Reverse(b)); // queue: 1, 0, 3, 2
        Assert.Equal([1, 0, 3, 2], pool.FreeQueue.Select(block => block.Id));

        var taken = pool.Allocate(3);
        Assert.Equal([1, 0, 3], taken.Select(block => block.Id));
        Assert.All(taken, block => Assert.Null(block.Hash));
        Assert.Null(pool.FindCached(HashOf(1)));
        Assert.Same(pool[2], pool.FindCached(HashOf(2)));
        Assert.Equal(1, pool.NumCachedBlocks);
    }

    [Fact]
    public void ResettingForgetsEveryCachedPrefixButOnlyWhileNoBlockIsHeld()
    {
        var pool = new BlockPool(3);
        var blocks = pool.Allocate(2);
        Assert.True(pool.TryCache(blocks[0], HashOf(1)));
        Assert.True(pool.TryCache(blocks[1], HashOf(2)));
        pool.Free([blocks[1]]);

        Assert.False(pool.ResetPrefixCache());   // block 0 is held: nothing changes
        Assert.Same(blocks[1], pool.FindCached(HashOf(2)));
        Assert.Equal(2, pool.NumCachedBlocks);

        pool.Free([blocks[0]]);
        Assert.True(pool.ResetPrefixCache());
        Assert.Equal(0, pool.NumCachedBlocks);
        Assert.Null(pool.FindCached(HashOf(1)));
        Assert.All(pool.Blocks, block => Assert.Null(block.Hash));
        Assert.Equal(3, pool.NumFreeBlocks);
        Assert.True(pool.TryCache(pool.Allocate(1)[0], HashOf(1)));   // cached anew
    }

    [Fact]
    public void UnhashedFreedBlocksAreReusedBeforeCachedOnes()
    {
        var pool = new BlockPool(3);
        var blocks = pool.Allocate(3);
        pool.TryCache(blocks[0], HashOf(7));
        pool.Free([blocks[0]]);
        pool.Free([blocks[1]]);

        Assert.Equal(1, pool.Allocate(1)[0].Id);
        Assert.Same(blocks[0], pool.FindCached(HashOf(7)));
    }

    [Fact]
    public void TouchTakesACachedBlockBackFromTheFreeQueue()
    {
        var pool = new BlockPool(2);
        var block = pool.Allocate(1)[0];
        pool.TryCache(block, HashOf(1, 2));
        pool.Free([block]);
        Assert.Equal(2, pool.NumFreeBlocks);

        pool.Touch([block]);
        Assert.Equal(1, block.RefCount);
        Assert.Equal(1, pool.NumFreeBlocks);
        pool.Touch([block]);
        Assert.Equal(2, block.RefCount);
        Assert.Equal(1, pool.NumFreeBlocks);
    }

    [Fact]
    public void OnlyCachedBlocksCanBeShared()
    {
        var pool = new BlockPool(2);
        var block = pool.Allocate(1)[0];
        Assert.Throws<InvalidOperationException>(() => pool.Touch([block]));
        Assert.Equal(1, block.RefCount);
    }

    [Fact]
    public void AHashMapsToOneBlock()
    {
        var pool = new BlockPool(2);
        var blocks = pool.Allocate(2);
        Assert.True(pool.TryCache(blocks[0], HashOf(5)));
        Assert.False(pool.TryCache(blocks[1], HashOf(5)));
        Assert.Null(blocks[1].Hash);
        Assert.Same(blocks[0], pool.FindCached(HashOf(5)));
    }
}
