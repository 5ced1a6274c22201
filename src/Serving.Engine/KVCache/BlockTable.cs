namespace Serving.Engine.KVCache;

/// The blocks that hold one sequence's KV, in position order (token at position p lives in block p / BlockSize,
/// slot p % BlockSize), plus the chained hashes of the sequence's full token blocks. The hashes depend only on
/// token ids, which never change once appended, so they survive preemption; the blocks do not.
///
/// salt (null for none) starts the hash chain: sequences whose K/V differs for the same tokens (a LoRA adapter's and
/// the base model's) never share blocks.
internal sealed class BlockTable(string? salt = null)
{
    readonly BlockHash? _root = salt is null ? null : BlockHash.Salt(salt);
    readonly List<KVBlock> _blocks = [];
    readonly List<BlockHash> _tokenBlockHashes = [];

    public IReadOnlyList<KVBlock> Blocks => _blocks;

    public int Count => _blocks.Count;

    /// Hash of full token block i of the sequence (whether or not a cached block holds it).
    public IReadOnlyList<BlockHash> TokenBlockHashes => _tokenBlockHashes;

    /// Leading blocks already offered to the prefix cache; the next CacheFullBlocks starts after them.
    internal int NumCommittedBlocks { get; set; }

    /// Leading blocks given back to the pool because no query of the sequence will see them again (they fell out of
    /// every layer's sliding window, KVCacheManager.ReleaseOutsideWindow). Their entries stay, so positions keep their
    /// block index, but the table no longer holds them: another sequence may own them now.
    internal int NumReleasedBlocks { get; set; }

    /// The blocks the table holds: all but the released head.
    public IEnumerable<KVBlock> HeldBlocks => _blocks.Skip(NumReleasedBlocks);

    /// The block id of each position's block; a released block's entry reads block 0, whose contents no attention sees
    /// (they are outside every window, and masked).
    public int[] BlockIds() => _blocks.Select((block, i) => i < NumReleasedBlocks ? 0 : block.Id).ToArray();

    internal void Append(IEnumerable<KVBlock> blocks) => _blocks.AddRange(blocks);

    /// Removes the last count blocks (uncommitted ones: never hashed) and returns them, last first.
    internal List<KVBlock> RemoveTail(int count)
    {
        var removable = _blocks.Count - Math.Max(NumCommittedBlocks, NumReleasedBlocks);
        if (count > removable)
            throw new InvalidOperationException($"cannot remove {count} blocks: only {removable} are uncommitted and held");
        var tail = _blocks.GetRange(_blocks.Count - count, count);
        _blocks.RemoveRange(_blocks.Count - count, count);
        tail.Reverse();
        return tail;
    }

    internal void Clear()
    {
        _blocks.Clear();
        NumCommittedBlocks = 0;
        NumReleasedBlocks = 0;
    }

    /// Extends the hash chain to cover the first numFullBlocks blocks of tokenIds.
    internal void HashTokenBlocks(IReadOnlyList<int> tokenIds, int numFullBlocks, int blockSize)
    {
        Span<int> tokens = stackalloc int[blockSize];
        while (_tokenBlockHashes.Count < numFullBlocks)
        {
            var start = _tokenBlockHashes.Count * blockSize;
            for (var i = 0; i < blockSize; i++)
                tokens[i] = tokenIds[start + i];
            var parent = _tokenBlockHashes.Count == 0 ? _root : _tokenBlockHashes[^1];
            _tokenBlockHashes.Add(BlockHash.Compute(parent, tokens));
        }
    }
}
