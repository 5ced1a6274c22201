using System.Buffers.Binary;
using System.IO.Compression;

namespace Serving.Training.Corpus;

/// A token stream on disk: little-endian uint16 ids, Brotli-compressed (.u16.br): compact enough to travel to the
/// GPU machine with the runtime, and read back with nothing but the .NET runtime.
internal static class TokenFile
{
    public const string Extension = ".u16.br";

    public static void Write(string path, IReadOnlyList<int> tokens)
    {
        var bytes = new byte[tokens.Count * 2];
        for (var i = 0; i < tokens.Count; i++)
        {
            if (tokens[i] is < 0 or > ushort.MaxValue) throw new ArgumentException($"token id {tokens[i]} does not fit 16 bits");
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i * 2), (ushort)tokens[i]);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var file = File.Create(path);
        using var brotli = new BrotliStream(file, CompressionLevel.SmallestSize);
        brotli.Write(bytes);
    }

    public static int[] Read(string path)
    {
        using var file = File.OpenRead(path);
        using var brotli = new BrotliStream(file, CompressionMode.Decompress);
        using var buffer = new MemoryStream();
        brotli.CopyTo(buffer);
        var bytes = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        if (bytes.Length % 2 != 0) throw new InvalidDataException($"{path}: {bytes.Length} bytes is not a whole number of uint16 ids");
        var tokens = new int[bytes.Length / 2];
        for (var i = 0; i < tokens.Length; i++) tokens[i] = BinaryPrimitives.ReadUInt16LittleEndian(bytes[(i * 2)..]);
        return tokens;
    }
}
