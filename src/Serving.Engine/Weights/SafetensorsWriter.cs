using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// A tensor to write: its header entry is known up front, its data is produced only when its turn comes,
/// so a whole checkpoint streams through memory one tensor at a time.
public sealed record SafetensorsEntry(string Name, ScalarType DType, long[] Shape, Func<Tensor> Produce);

/// Writes the safetensors format: [u64 N][JSON header padded with spaces to 8 bytes][tensor data in entry order].
public static class SafetensorsWriter
{
    /// Writes tensors that already exist (a state dict); they are not disposed.
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, tensors.Select(pair => new SafetensorsEntry(pair.Key, pair.Value.dtype, pair.Value.shape, pair.Value.alias)).ToArray(), metadata);

    /// Writes the entries in order; each produced tensor must match its entry's dtype and shape and is disposed after writing
    /// (return an alias() to keep a tensor you own).
    public static void Write(string path, IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = HeaderBytes(entries, metadata);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
        stream.Write(prefix);
        stream.Write(header);
        foreach (var entry in entries) WriteData(stream, entry);
    }

    static byte[] HeaderBytes(IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        var root = new JsonObject();
        if (metadata is { Count: > 0 })
            root["__metadata__"] = new JsonObject(metadata.Select(pair => KeyValuePair.Create(pair.Key, (JsonNode?)pair.Value)));
        long offset = 0;
        foreach (var entry in entries)
        {
            var size = entry.Shape.Aggregate(1L, (product, dim) => product * dim) * SafetensorsDType.ElementSize(entry.DType);
            root[entry.Name] = new JsonObject
            {
                ["dtype"] = SafetensorsDType.Name(entry.DType),
                ["shape"] = new JsonArray(entry.Shape.Select(dim => (JsonNode?)dim).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + size),
            };
            offset += size;
        }
        var json = Encoding.UTF8.GetBytes(root.ToJsonString());
        // pad with spaces so the data section starts 8-byte aligned, as the format recommends
        var padded = (json.Length + 7) / 8 * 8;
        return [.. json, .. Enumerable.Repeat((byte)' ', padded - json.Length)];
    }

    static void WriteData(Stream stream, SafetensorsEntry entry)
    {
        // everything created here, the produced tensor included, dies with the scope
        using var scope = NewDisposeScope();
        using var produced = entry.Produce();
        if (produced.dtype != entry.DType || !produced.shape.SequenceEqual(entry.Shape))
            throw new InvalidOperationException(
                $"tensor '{entry.Name}' was declared {entry.DType} {SafetensorsTensorInfo.FormatShape(entry.Shape)} but produced {produced.dtype} {SafetensorsTensorInfo.FormatShape(produced.shape)}");
        var cpu = produced.cpu().contiguous();
        var flat = cpu.view(-1);
        var elementSize = cpu.ElementSize;
        var chunkElements = (1L << 30) / elementSize;
        for (long start = 0; start < flat.shape[0]; start += chunkElements)
        {
            var chunk = flat.narrow(0, start, Math.Min(chunkElements, flat.shape[0] - start));
            stream.Write(chunk.bytes);
        }
    }
}
