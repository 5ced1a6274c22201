using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Serving.Engine.KVCache;

/// Identity of a full block's tokens and of every token before them: SHA-256 over the parent block's hash
/// and this block's token ids. Equal hashes mean equal prefixes (a collision is cryptographically unlikely),
/// so a block found by hash holds exactly the KV a new sequence would compute for that prefix.
internal readonly record struct BlockHash(ulong Part0, ulong Part1, ulong Part2, ulong Part3)
{
    const int DigestBytes = 32;

    /// parent is null for the first block of a sequence; a marker byte keeps "no parent" apart from any digest.
    public static BlockHash Compute(BlockHash? parent, ReadOnlySpan<int> tokenIds)
    {
        var input = new byte[1 + DigestBytes + sizeof(int) * tokenIds.Length];
        if (parent is { } p)
        {
            input[0] = 1;
            p.WriteTo(input.AsSpan(1, DigestBytes));
        }
        for (var i = 0; i < tokenIds.Length; i++)
            BinaryPrimitives.WriteInt32LittleEndian(input.AsSpan(1 + DigestBytes + sizeof(int) * i), tokenIds[i]);
        return Digest(input);
    }

    /// The root of a salted hash chain: SHA-256 over a marker byte (2, apart from the blocks' 0 and 1) and the salt.
    public static BlockHash Salt(string salt)
    {
        var input = new byte[1 + System.Text.Encoding.UTF8.GetByteCount(salt)];
        input[0] = 2;
        System.Text.Encoding.UTF8.GetBytes(salt, input.AsSpan(1));
        return Digest(input);
    }

    static BlockHash Digest(ReadOnlySpan<byte> input)
    {
        Span<byte> digest = stackalloc byte[DigestBytes];
        SHA256.HashData(input, digest);
        return new BlockHash(
            BinaryPrimitives.ReadUInt64LittleEndian(digest[..8]),
            BinaryPrimitives.ReadUInt64LittleEndian(digest[8..16]),
            BinaryPrimitives.ReadUInt64LittleEndian(digest[16..24]),
            BinaryPrimitives.ReadUInt64LittleEndian(digest[24..32]));
    }

    void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination[..8], Part0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..16], Part1);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[16..24], Part2);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[24..32], Part3);
    }

    public override string ToString() => $"{Part0:x16}{Part1:x16}";
}
