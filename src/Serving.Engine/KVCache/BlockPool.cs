namespace Serving.Engine.KVCache;

/// Every block of the KV pool with its reference count, the free queue and the prefix cache (hash -> block).
///
/// Free queue order is eviction order: Allocate takes from the head. A freed block without a hash goes to
/// the head (its contents can never be reused, so it should be the first to go); a freed hashed block goes
/// to the tail, so the hashed block nearest the head is the least recently used one. A hashed block in the
/// free queue is "cached but unreferenced": a prefix hit takes it back (Touch), an allocation evicts it.
internal sealed class BlockPool
{
    readonly KVBlock[] _blocks;
    readonly LinkedList<KVBlock> _freeQueue = new();
    readonly Dictionary<BlockHash, KVBlock> _cachedBlocks = new();

    public BlockPool(int numBlocks)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numBlocks, 1);
        _blocks = new KVBlock[numBlocks];
        for (var id = 0; id < numBlocks; id++)
        {
            _blocks[id] = new KVBlock(id);
            _blocks[id].FreeQueueNode = _freeQueue.AddLast(_blocks[id]);
        }
    }

    public int NumBlocks => _blocks.Length;

    /// Blocks no table holds, cached ones included: what Allocate can hand out.
    public int NumFreeBlocks => _freeQueue.Count;

    /// Blocks reachable by hash, referenced or not.
    public int NumCachedBlocks => _cachedBlocks.Count;

    public KVBlock this[int id] => _blocks[id];

    public IEnumerable<KVBlock> Blocks => _blocks;

    /// The free queue from head (next to be allocated) to tail.
    public IEnumerable<KVBlock> FreeQueue => _freeQueue;

    public KVBlock? FindCached(BlockHash hash) => _cachedBlocks.GetValueOrDefault(hash);

    /// Takes count blocks from the head of the free queue, evicting their cached contents; each gets RefCount 1.
    public List<KVBlock> Allocate(int count)
    {
        if (count > _freeQueue.Count)
            throw new InvalidOperationException($"asked for {count} KV blocks, only {_freeQueue.Count} free");
        var allocated = new List<KVBlock>(count);
        for (var i = 0; i < count; i++)
        {
            var block = _freeQueue.First!.Value;
            RemoveFromFreeQueue(block);
            Evict(block);
            block.RefCount = 1;
            allocated.Add(block);
        }
        return allocated;
    }

    /// Adds a reference to each cached block (a prefix hit), taking unreferenced ones out of the free queue.
    /// Only hashed blocks can be shared: that is what makes sharing safe (they are full and never written again).
    public void Touch(IEnumerable<KVBlock> blocks)
    {
        foreach (var block in blocks)
        {
            if (block.Hash is null)
                throw new InvalidOperationException($"{block} is not cached and cannot be shared");
            if (block.RefCount == 0)
                RemoveFromFreeQueue(block);
            block.RefCount++;
        }
    }

    /// Drops one reference from each block; a block nobody holds returns to the free queue. Pass a table's
    /// blocks in reverse so its tail blocks (the least likely to be shared) are evicted first.
    public void Free(IEnumerable<KVBlock> blocksInEvictionOrder)
    {
        foreach (var block in blocksInEvictionOrder)
        {
            if (block.RefCount <= 0)
                throw new InvalidOperationException($"{block} freed more often than it was allocated");
            if (--block.RefCount > 0)
                continue;
            block.FreeQueueNode = block.Hash is null ? _freeQueue.AddFirst(block) : _freeQueue.AddLast(block);
        }
    }

    /// Makes a full, computed block findable by hash. False when another block already holds this prefix (the
    /// block then stays private to its table) or the block is already cached.
    public bool TryCache(KVBlock block, BlockHash hash)
    {
        if (block.Hash is not null || block.RefCount == 0 || !_cachedBlocks.TryAdd(hash, block))
            return false;
        block.Hash = hash;
        return true;
    }

    /// Forgets every cached prefix (vLLM's reset_prefix_cache), so later prompts compute their KV again. Only while no
    /// table holds a block: a held block's hash may be what its sequence's next blocks chain from. False otherwise.
    public bool ResetPrefixCache()
    {
        if (_freeQueue.Count < _blocks.Length)
            return false;
        foreach (var block in _blocks)
            block.Hash = null;
        _cachedBlocks.Clear();
        return true;
    }

    void RemoveFromFreeQueue(KVBlock block)
    {
        _freeQueue.Remove(block.FreeQueueNode!);
        block.FreeQueueNode = null;
    }

    void Evict(KVBlock block)
    {
        if (block.Hash is not { } hash)
            return;
        _cachedBlocks.Remove(hash);
        block.Hash = null;
    }
}
