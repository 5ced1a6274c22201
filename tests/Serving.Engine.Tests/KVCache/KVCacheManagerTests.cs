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
    /// Every layer sliding over 6 positions, blocks of 4: after 10 computed tokens the next query (position 10) sees
    /// positions 5..10, so block 0 (0..3) goes back to the pool and block 1 (4..7) stays; entries keep their index,
    /// released ones read block 0, and freeing the table gives back only what it still holds.
    [Fact]
    public void BlocksOutOfEveryWindowGoBackToThePool()
    {
        var manager = new KVCacheManager(numBlocks: 8, blockSize: 4, enablePrefixCaching: false, attentionSpan: 6);
        var table = new BlockTable();
        Assert.True(manager.TryAllocateSlots(table, 10));
        var ids = table.BlockIds();
        manager.ReleaseOutsideWindow(table, 8);                // the next query at 8 sees 3..8: nothing whole before it
        Assert.Equal(5, manager.NumFreeBlocks);
        manager.ReleaseOutsideWindow(table, 10);
        Assert.Equal(6, manager.NumFreeBlocks);
        Assert.Equal(1, table.NumReleasedBlocks);
        Assert.Equal([0, ids[1], ids[2]], table.BlockIds());
        Assert.True(manager.TryAllocateSlots(table, 13));       // positions keep their blocks: a fourth one for 12
        Assert.Equal(4, table.Count);
        manager.ReleaseOutsideWindow(table, 13);                // the next query at 13 sees 8..13: blocks 0 and 1 out
        Assert.Equal(2, table.NumReleasedBlocks);
        Assert.Equal(6, manager.NumFreeBlocks);
        manager.Free(table);
        Assert.Equal(8, manager.NumFreeBlocks);
        Assert.All(manager.Pool.Blocks, block => Assert.Equal(0, block.RefCount));
        Assert.Equal(0, table.NumReleasedBlocks);
    }

    /// A cached prefix longer than the span: the blocks before the first new query's window are recorded released,
    /// never taken (nor revived from the free queue); a released cached block stays findable.
    [Fact]
    public void APrefixHitTakesOnlyTheBlocksInTheWindow()
    {
        var manager = new KVCacheManager(numBlocks: 8, blockSize: 4, enablePrefixCaching: true, attentionSpan: 5);
        int[] prompt = [.. Enumerable.Range(1, 13)];
        var first = new BlockTable();
        Assert.True(manager.TryAllocateSlots(first, prompt.Length));
        manager.CacheFullBlocks(first, prompt, prompt.Length);
        manager.ReleaseOutsideWindow(first, prompt.Length);     // the next query at 13 sees 9..13: blocks 0 and 1 out
        Assert.Equal(2, first.NumReleasedBlocks);
        Assert.Equal(0, first.Blocks[0].RefCount);
        Assert.Equal(4 + 2, manager.NumFreeBlocks);
        var second = new BlockTable();
        var prefix = manager.FindCachedPrefix(second, prompt);  // all three full blocks still cached
        Assert.Equal(12, prefix.NumTokens);
        Assert.True(manager.TryAllocateSlots(second, prompt.Length, prefix));
        Assert.Equal(2, second.NumReleasedBlocks);              // the first new query (12) sees 8..12: blocks 0 and 1 out
        Assert.Equal(0, first.Blocks[1].RefCount);
        Assert.Equal(2, first.Blocks[2].RefCount);
        Assert.Equal([first.Blocks[0], first.Blocks[1]], manager.Pool.FreeQueue.TakeLast(2));   // found useful: the last evicted
        Assert.Equal(6 - 1, manager.NumFreeBlocks);             // a new tail block only
        Assert.Equal(4, manager.MostBlocksHeld(1000, maxStepTokens: 4));   // span 5 + a step of 4: 3 blocks, one more straddled
        Assert.Equal(3, manager.MostBlocksHeld(9, maxStepTokens: 4));
    }
}
