namespace Serving.Engine.KVCache;

/// Where a token's K/V lives in the pool: the one definition of the slot formula (the CUDA kernels that read
/// the pool through block tables compute the same in device code, see Cuda/Kernels/paged_attention.cu).
public static class SlotMapping
{
    /// The pool slot of the token at position of a sequence whose context lives in blockIds (in position order):
    /// blockIds[position / blockSize] * blockSize + position % blockSize.
    public static int Slot(IReadOnlyList<int> blockIds, int position, int blockSize) =>
        blockIds[position / blockSize] * blockSize + position % blockSize;

    /// Blocks that hold numTokens tokens.
    public static int BlocksFor(int numTokens, int blockSize) => (numTokens + blockSize - 1) / blockSize;
}
