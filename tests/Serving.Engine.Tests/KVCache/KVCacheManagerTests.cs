using Serving.Engine.KVCache;

namespace Serving.Engine.Tests.KVCache;

public sealed class KVCacheManagerTests
{
    static readonly int[] TenTokens = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20];

    /// Allocates slots for all tokens and marks them computed, as a finished prefill does.
    static BlockTable Prefill(KVCacheManager manager, int[] tokens)
    {
        var table = new BlockTable();
        var prefix = manager.FindCachedPrefix(table, tokens);
        Assert.True(manager.TryAllocateSlots(table, tokens.Length, prefix));
        manager.CacheFullBlocks(table, tokens, tokens.Length);
        return table;
    }

    [Fact]
    public void AllocatesWholeBlocksAndGrowsOnlyWhenABlockFills()
    {
        var manager = new KVCacheManager(numBlocks: 4, blockSize: 4, enablePrefixCaching: true);
        var table = new BlockTable();
        Assert.True(manager.TryAllocateSlots(table, 5));
        Assert.Equal(2, table.Count);
        Assert.True(manager.TryAllocateSlots(table, 8));
        Assert.Equal(2, table.Count);
        Assert.True(manager.TryAllocateSlots(table, 9));
        Assert.Equal(3, table.Count);
        Assert.Equal(1, manager.NumFreeBlocks);
    }

    [Fact]
    public void AllocationThatDoesNotFitChangesNothing()
    {
        var manager = new KVCacheManager(numBlocks: 2, blockSize: 4, enablePrefixCaching: true);
        var table = new BlockTable();
        Assert.True(manager.TryAllocateSlots(table, 4));
        Assert.False(manager.TryAllocateSlots(table, 12));
        Assert.Equal(1, table.Count);
        Assert.Equal(1, manager.NumFreeBlocks);
    }

    [Fact]
    public void ASecondIdenticalPromptReusesTheFullBlocks()
    {
        var manager = new KVCacheManager(numBlocks: 8, blockSize: 4, enablePrefixCaching: true);
        var first = Prefill(manager, TenTokens);
        var second = new BlockTable();

        var prefix = manager.FindCachedPrefix(second, TenTokens);
        Assert.Equal(8, prefix.NumTokens);
        Assert.True(manager.TryAllocateSlots(second, TenTokens.Length, prefix));

        Assert.Equal(first.Blocks.Take(2), second.Blocks.Take(2));
        Assert.NotEqual(first.Blocks[2], second.Blocks[2]); // the partial tail block is private
        Assert.All(first.Blocks.Take(2), block => Assert.Equal(2, block.RefCount));
        Assert.Equal(8 - 4, manager.NumFreeBlocks); // 3 for the first, 1 new tail for the second
    }

    [Fact]
    public void AFullyCachedPromptStillComputesItsLastBlock()
    {
        var manager = new KVCacheManager(numBlocks: 8, blockSize: 4, enablePrefixCaching: true);
        int[] eight = [1, 2, 3, 4, 5, 6, 7, 8];
        Prefill(manager, eight);
        var prefix = manager.FindCachedPrefix(new BlockTable(), eight);
        Assert.Equal(4, prefix.NumTokens);
    }

    [Fact]
    public void APromptThatDiffersEarlyHitsOnlyTheBlocksBeforeTheDifference()
    {
        var manager = new KVCacheManager(numBlocks: 8, blockSize: 4, enablePrefixCaching: true);
        Prefill(manager, TenTokens);
        var other = (int[])TenTokens.Clone();
        other[5] = 99;
        Assert.Equal(4, manager.FindCachedPrefix(new BlockTable(), other).NumTokens);
        other[0] = 99;
        Assert.Equal(0, manager.FindCachedPrefix(new BlockTable(), other).NumTokens);
    }

    [Fact]
    public void AFreedSequenceLeavesItsFullBlocksCachedTailFirstInEvictionOrder()
    {
        var manager = new KVCacheManager(numBlocks: 4, blockSize: 2, enablePrefixCaching: true);
        int[] six = [1, 2, 3, 4, 5, 6];
        var table = Prefill(manager, six);
        var ids = table.BlockIds();
        manager.Free(table);

        Assert.Equal(0, table.Count);
        Assert.Equal(4, manager.NumFreeBlocks);
        var freeOrder = manager.Pool.FreeQueue.Select(block => block.Id).ToList();
        Assert.True(freeOrder.IndexOf(ids[2]) < freeOrder.IndexOf(ids[1]));
        Assert.True(freeOrder.IndexOf(ids[1]) < freeOrder.IndexOf(ids[0]));

        var again = new BlockTable();
        var prefix = manager.FindCachedPrefix(again, six);
        Assert.Equal(4, prefix.NumTokens);
        Assert.True(manager.TryAllocateSlots(again, 6, prefix));
        Assert.Equal(ids.Take(2), again.BlockIds().Take(2));
    }

    [Fact]
    public void RevivingCachedBlocksCountsAgainstTheFreeBlocks()
    {
        var manager = new KVCacheManager(numBlocks: 3, blockSize: 2, enablePrefixCaching: true);
        int[] six = [1, 2, 3, 4, 5, 6];
        manager.Free(Prefill(manager, six)); // 3 blocks, all cached and free
        var table = new BlockTable();
        var prefix = manager.FindCachedPrefix(table, six); // blocks 0 and 1 (4 tokens)
        Assert.Equal(4, prefix.NumTokens);
        Assert.False(manager.TryAllocateSlots(table, 8, prefix)); // needs 2 revived + 2 new > 3 free
        Assert.True(manager.TryAllocateSlots(table, 6, prefix));
        Assert.Equal(0, manager.NumFreeBlocks);
    }

    [Fact]
    public void WithPrefixCachingOffNothingIsHashedOrShared()
    {
        var manager = new KVCacheManager(numBlocks: 8, blockSize: 4, enablePrefixCaching: false);
        var first = Prefill(manager, TenTokens);
        Assert.All(first.Blocks, block => Assert.Null(block.Hash));
        Assert.Equal(0, manager.FindCachedPrefix(new BlockTable(), TenTokens).NumTokens);
        manager.RecordPrefixLookup(10, 0);
        Assert.Equal(0, manager.PrefixCacheQueries);
    }
}
