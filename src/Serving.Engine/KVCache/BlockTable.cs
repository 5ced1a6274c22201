namespace Serving.Engine.KVCache;

/// The blocks that hold one sequence's KV, in position order (token at position p lives in block p / BlockSize,
/// slot p % BlockSize), plus the chained hashes of the sequence's full token blocks. The hashes depend only on
/// token ids, which never change once appended, so they survive preemption; the blocks do not.
internal sealed class BlockTable
{
    readonly List<KVBlock> _blocks = [];
    readonly List<BlockHash> _tokenBlockHashes = [];

    public IReadOnlyList<KVBlock> Blocks => _blocks;

    public int Count => _blocks.Count;

    /// Hash of full token block i of the sequence (whether or not a cached block holds it).
    public IReadOnlyList<BlockHash> TokenBlockHashes => _tokenBlockHashes;

    /// Leading blocks already offered to the prefix cache; the next CacheFullBlocks starts after them.
    internal int NumCommittedBlocks { get; set; }

    public int[] BlockIds() => _blocks.Select(block => block.Id).ToArray();

    internal void Append(IEnumerable<KVBlock> blocks) => _blocks.AddRange(blocks);

    internal void Clear()
    {
        _blocks.Clear();
        NumCommittedBlocks = 0;
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
            BlockHash? parent = _tokenBlockHashes.Count == 0 ? null : _tokenBlockHashes[^1];
            _tokenBlockHashes.Add(BlockHash.Compute(parent, tokens));
        }
    }
}
