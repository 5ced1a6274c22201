namespace Serving.Engine.KVCache;

/// Per-sequence view of the block pool: gives each block table the slots its tokens need, reuses the longest
/// cached prefix of full blocks for a new sequence, and caches blocks once they are full and computed.
/// The scheduler asks before it acts: TryAllocateSlots changes nothing when the pool is short.
internal sealed class KVCacheManager
{
    readonly BlockPool _pool;

    /// attentionSpan: when every layer of the model slides, the largest window (ModelConfig.AttentionSpan): blocks that
    /// fall out of it go back to the pool while their sequence runs (ReleaseOutsideWindow); null: a sequence holds
    /// every block of its context.
    public KVCacheManager(int numBlocks, int blockSize, bool enablePrefixCaching, int? attentionSpan = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        if (attentionSpan is < 1) throw new ArgumentOutOfRangeException(nameof(attentionSpan), attentionSpan, "a window is positive");
        _pool = new BlockPool(numBlocks);
        BlockSize = blockSize;
        PrefixCachingEnabled = enablePrefixCaching;
        AttentionSpan = attentionSpan;
    }

    public int BlockSize { get; }
    public bool PrefixCachingEnabled { get; }
    public int? AttentionSpan { get; }
    public BlockPool Pool => _pool;
    public int NumBlocks => _pool.NumBlocks;
    public int NumFreeBlocks => _pool.NumFreeBlocks;

    /// Blocks held by live sequences over all blocks (cached-but-unreferenced blocks count as free).
    public double Usage => (double)(NumBlocks - NumFreeBlocks) / NumBlocks;

    /// Tokens looked up in the prefix cache by admitted sequences, and how many of them were found.
    public long PrefixCacheQueries { get; private set; }
    public long PrefixCacheHits { get; private set; }

    public int BlocksFor(int numTokens) => SlotMapping.BlocksFor(numTokens, BlockSize);

    /// The most blocks a sequence of numTokens holds at once, computed at most maxStepTokens a step: all of them, or
    /// when every layer slides, its span (straddling one block more) and one step's new tokens (ReleaseOutsideWindow).
    public int MostBlocksHeld(int numTokens, int maxStepTokens) =>
        AttentionSpan is { } span ? Math.Min(BlocksFor(numTokens), BlocksFor(span + maxStepTokens) + 1) : BlocksFor(numTokens);

    /// The longest run of cached full blocks at the start of tokenIds. At least the last token is left out,
    /// so a fully cached prompt still computes one token and yields logits to sample from.
    public CachedPrefix FindCachedPrefix(BlockTable table, IReadOnlyList<int> tokenIds)
    {
        if (!PrefixCachingEnabled || tokenIds.Count == 0)
            return CachedPrefix.None;
        var maxBlocks = (tokenIds.Count - 1) / BlockSize;
        table.HashTokenBlocks(tokenIds, maxBlocks, BlockSize);
        var hits = new List<KVBlock>();
        for (var i = 0; i < maxBlocks && _pool.FindCached(table.TokenBlockHashes[i]) is { } block; i++)
            hits.Add(block);
        return hits.Count == 0 ? CachedPrefix.None : new CachedPrefix(hits, hits.Count * BlockSize);
    }

    /// Makes table hold slots for its first numTokens tokens: takes the prefix blocks (table must be empty
    /// then), then fresh blocks from the pool. Returns false, changing nothing, when the pool is short.
    public bool TryAllocateSlots(BlockTable table, int numTokens, CachedPrefix? prefix = null)
    {
        prefix ??= CachedPrefix.None;
        if (prefix.Blocks.Count > 0 && table.Count > 0)
            throw new InvalidOperationException("a cached prefix can only start an empty block table");
        var numNewBlocks = Math.Max(0, BlocksFor(numTokens) - table.Count - prefix.Blocks.Count);
        // when every layer slides, the prefix's blocks before the first new query's window are never read: the table
        // records them as released without taking them (ReleaseOutsideWindow)
        var unseen = Math.Min(BlocksBeforeWindow(prefix.NumTokens), prefix.Blocks.Count);
        var taken = prefix.Blocks.Skip(unseen).ToList();
        // Unreferenced prefix blocks leave the free queue on Touch, so they count against the free blocks too.
        var numRevived = taken.Count(block => block.RefCount == 0);
        if (numNewBlocks + numRevived > _pool.NumFreeBlocks)
            return false;
        _pool.Touch(taken);
        // the unseen ones are not taken, but were just found useful: freshened, they are not the next evicted
        var unseenBlocks = prefix.Blocks.Take(unseen).ToList();
        _pool.Touch(unseenBlocks);
        _pool.Free(unseenBlocks);
        table.Append(prefix.Blocks);
        if (prefix.Blocks.Count > 0) table.NumReleasedBlocks = unseen;
        table.NumCommittedBlocks = Math.Max(table.NumCommittedBlocks, prefix.Blocks.Count);
        table.Append(_pool.Allocate(numNewBlocks));
        return true;
    }

    /// Offers the blocks that became full with the first numComputedTokens tokens to the prefix cache.
    /// Called after the model wrote their KV, so a cached block never holds a promise, only data.
    public void CacheFullBlocks(BlockTable table, IReadOnlyList<int> tokenIds, int numComputedTokens)
    {
        if (!PrefixCachingEnabled)
            return;
        var numFull = Math.Min(numComputedTokens / BlockSize, table.Count);
        table.HashTokenBlocks(tokenIds, numFull, BlockSize);
        for (var i = table.NumCommittedBlocks; i < numFull; i++)
            _pool.TryCache(table.Blocks[i], table.TokenBlockHashes[i]);
        table.NumCommittedBlocks = Math.Max(table.NumCommittedBlocks, numFull);
    }

    /// Releases the blocks past the first numTokens tokens' (held for draft tokens that were refused).
    public void FreeBeyond(BlockTable table, int numTokens)
    {
        var extra = table.Count - BlocksFor(numTokens);
        if (extra > 0)
            _pool.Free(table.RemoveTail(extra));
    }

    /// Releases every block the table holds, tail first so the tail is evicted before the shared prefix.
    public void Free(BlockTable table)
    {
        _pool.Free(table.HeldBlocks.Reverse());
        table.Clear();
    }

    /// When every layer slides (AttentionSpan): gives back the leading blocks no query of the sequence will see again,
    /// once its first numComputedTokens tokens are computed. Its next query, at position numComputedTokens, sees the
    /// span's last positions up to its own (from numComputedTokens - span + 1 on), and later ones see less far back;
    /// a block wholly before that is released (a cached one stays findable until evicted, as vLLM's sliding-window
    /// manager keeps it). Call after CacheFullBlocks, so a full block is offered to the prefix cache first.
    public void ReleaseOutsideWindow(BlockTable table, int numComputedTokens)
    {
        var unseen = Math.Min(BlocksBeforeWindow(numComputedTokens), table.Count);
        if (unseen <= table.NumReleasedBlocks) return;
        _pool.Free(table.Blocks.Skip(table.NumReleasedBlocks).Take(unseen - table.NumReleasedBlocks));
        table.NumReleasedBlocks = unseen;
    }

    /// The whole blocks before the window of a query at this position (every later query's too): positions up to
    /// position - AttentionSpan, which no query from here on sees; 0 when some layer sees the whole context.
    int BlocksBeforeWindow(int position) => AttentionSpan is { } span ? Math.Max(0, position - span + 1) / BlockSize : 0;

    public void RecordPrefixLookup(int numQueriedTokens, int numHitTokens)
    {
        if (!PrefixCachingEnabled)
            return;
        PrefixCacheQueries += numQueriedTokens;
        PrefixCacheHits += numHitTokens;
    }
}

/// Cached full blocks found for the start of a sequence, and the tokens they cover (a multiple of BlockSize).
internal sealed record CachedPrefix(IReadOnlyList<KVBlock> Blocks, int NumTokens)
{
    public static CachedPrefix None { get; } = new([], 0);
}
