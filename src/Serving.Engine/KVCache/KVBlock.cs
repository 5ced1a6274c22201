namespace Serving.Engine.KVCache;

/// One fixed-size slab of the KV pool: BlockSize token slots in every layer's K and V tensors. The pool
/// tensors are indexed by Id; this object carries only the bookkeeping.
internal sealed class KVBlock(int id)
{
    public int Id { get; } = id;

    /// Block tables that hold this block. 0 means the block sits in the pool's free queue.
    public int RefCount { get; internal set; }

    /// Set once the block is full, its KV computed and prefix caching on; null otherwise. Only a hashed
    /// block may be held by more than one block table.
    public BlockHash? Hash { get; internal set; }

    /// This block's node in the pool's free queue while RefCount is 0, for O(1) removal on a cache hit.
    internal LinkedListNode<KVBlock>? FreeQueueNode { get; set; }

    public override string ToString() => $"block {Id} (refs {RefCount}{(Hash is null ? "" : ", cached")})";
}
