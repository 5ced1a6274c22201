using Serving.Engine.KVCache;
using Serving.Engine.Scheduling;

namespace Serving.Engine.Tests.Scheduling;

/// The block-pool invariants of KVCache/README.md, checked against the scheduler's live sequences.
internal static class PoolInvariants
{
    public static void Check(Scheduler scheduler)
    {
        var manager = scheduler.KVCache;
        var holders = new Dictionary<KVBlock, List<(Sequence Sequence, int Index)>>();
        foreach (var sequence in scheduler.Waiting)
            Assert.Equal(0, sequence.BlockTable.Count); // waiting and preempted sequences hold nothing
        foreach (var sequence in scheduler.Running)
        {
            Assert.True(sequence.BlockTable.Count * manager.BlockSize >= sequence.NumComputedTokens);
            for (var i = 0; i < sequence.BlockTable.Count; i++)
            {
                var block = sequence.BlockTable.Blocks[i];
                if (!holders.TryGetValue(block, out var list))
                    holders[block] = list = [];
                list.Add((sequence, i));
            }
        }
        foreach (var block in manager.Pool.Blocks)
            CheckBlock(manager, block, holders.GetValueOrDefault(block) ?? []);
        Assert.Equal(manager.NumBlocks - holders.Count, manager.NumFreeBlocks);
    }

    static void CheckBlock(KVCacheManager manager, KVBlock block, List<(Sequence Sequence, int Index)> holders)
    {
        Assert.True(block.RefCount >= 0, $"{block} has a negative reference count");
        Assert.Equal(holders.Count, block.RefCount);
        Assert.Equal(block.RefCount == 0, block.FreeQueueNode is not null);
        if (block.Hash is { } hash)
            Assert.Same(block, manager.Pool.FindCached(hash));
        if (holders.Count < 2)
            return;
        // Shared: must be a full, hashed, computed prefix block in every holder, at the same position.
        Assert.NotNull(block.Hash);
        Assert.Single(holders.Select(holder => holder.Index).Distinct());
        foreach (var (sequence, index) in holders)
            Assert.True((index + 1) * manager.BlockSize <= sequence.NumComputedTokens,
                $"{block} shared by {sequence} but not computed there");
    }

    public static void CheckAllFree(Scheduler scheduler)
    {
        Assert.Equal(scheduler.KVCache.NumBlocks, scheduler.KVCache.NumFreeBlocks);
        Assert.All(scheduler.KVCache.Pool.Blocks, block => Assert.Equal(0, block.RefCount));
    }
}
