using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Engine.Weights;

/// The parsed, validated header of a safetensors file:
///   [u64 little-endian N][N bytes of JSON header][data section]
/// Every tensor's data_offsets lie inside the data section and match its dtype and shape.
public sealed record SafetensorsHeader(
    long DataStart,
    IReadOnlyDictionary<string, SafetensorsTensorInfo> Tensors,
    IReadOnlyDictionary<string, string> Metadata)
{
    /// Headers larger than this are refused as corrupt (real ones are a few hundred KiB at most).
    const long MaxHeaderBytes = 100L << 20;

    public static SafetensorsHeader Read(string path, Stream stream)
    {
        var name = Path.GetFileName(path);
        var fileLength = stream.Length;
        if (fileLength < 8) throw Corrupt(name, $"the file is {fileLength} bytes, shorter than the 8-byte header length");
        Span<byte> prefix = stackalloc byte[8];
        stream.ReadExactly(prefix);
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength == 0 || headerLength > MaxHeaderBytes || headerLength > (ulong)(fileLength - 8))
            throw Corrupt(name, $"header length {headerLength} does not fit the file ({fileLength} bytes)");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        var dataStart = 8 + (long)headerLength;
        return Parse(name, headerBytes, dataStart, fileLength - dataStart);
    }

    static SafetensorsHeader Parse(string name, byte[] headerBytes, long dataStart, long dataLength)
    {
        var root = ParseJson(name, headerBytes);
        var tensors = new Dictionary<string, SafetensorsTensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in root)
        {
            if (key == "__metadata__") ReadMetadata(name, value, metadata);
            else tensors[key] = ReadTensor(name, key, value, dataLength);
        }
        return new SafetensorsHeader(dataStart, tensors, metadata);
    }

    static JsonObject ParseJson(string name, byte[] headerBytes)
    {
        try
        {
            var text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(headerBytes);
            return JsonNode.Parse(text) as JsonObject ?? throw Corrupt(name, "the header is not a JSON object");
        }
        catch (Exception e) when (e is JsonException or DecoderFallbackException)
        {
            throw Corrupt(name, $"the header is not valid UTF-8 JSON ({e.Message})", e);
        }
    }

    static void ReadMetadata(string name, JsonNode? value, Dictionary<string, string> metadata)
    {
        if (value is not JsonObject obj) throw Corrupt(name, "__metadata__ is not an object");
        foreach (var (key, item) in obj)
            metadata[key] = item is JsonValue v && v.TryGetValue(out string? s) ? s
                : throw Corrupt(name, $"__metadata__.{key} is not a string");
    }

    static SafetensorsTensorInfo ReadTensor(string name, string tensor, JsonNode? value, long dataLength)
    {
        if (value is not JsonObject obj) throw Corrupt(name, $"entry '{tensor}' is not an object");
        var dtypeName = obj["dtype"] is JsonValue d && d.TryGetValue(out string? s) ? s
            : throw Corrupt(name, $"tensor '{tensor}' has no dtype");
        var isFloat8 = dtypeName == "F8_E4M3";
        var dtype = TorchSharp.torch.ScalarType.Byte;
        if (!isFloat8 && !SafetensorsDType.TryParse(dtypeName, out dtype))
            throw new CheckpointException($"{name}: tensor '{tensor}' has unsupported dtype {dtypeName} (supported: F32, F16, BF16, F8_E4M3, F64, integer and BOOL)");
        var shape = Longs(name, tensor, obj["shape"], "shape");
        if (shape.Length == 0) shape = [1];   // a scalar (0-dim) tensor is read as its one element: Apertus's xIELU beta and eps
        var offsets = Longs(name, tensor, obj["data_offsets"], "data_offsets");
        if (offsets.Length != 2) throw Corrupt(name, $"tensor '{tensor}' data_offsets must have 2 entries");
        var info = new SafetensorsTensorInfo(tensor, dtype, shape, offsets[0], offsets[1]) { IsFloat8 = isFloat8 };
        CheckExtent(name, info, dataLength);
        return info;
    }

    static void CheckExtent(string name, SafetensorsTensorInfo info, long dataLength)
    {
        if (info.Begin > info.End || info.End > dataLength)
            throw Corrupt(name, $"tensor '{info.Name}' data_offsets [{info.Begin}, {info.End}] lie outside the data section ({dataLength} bytes; truncated file?)");
        var expected = info.NumElements * SafetensorsDType.ElementSize(info.DType);
        if (info.NumBytes != expected)
            throw Corrupt(name, $"tensor '{info.Name}' holds {info.NumBytes} bytes but dtype {SafetensorsDType.Name(info.DType)} and shape {info.ShapeText} need {expected}");
    }

    static long[] Longs(string name, string tensor, JsonNode? node, string field)
    {
        if (node is not JsonArray items) throw Corrupt(name, $"tensor '{tensor}' has no {field} array");
        return items.Select(item => item is JsonValue v && v.TryGetValue(out long n) && n >= 0 ? n
            : throw Corrupt(name, $"tensor '{tensor}' {field} holds {item?.ToJsonString() ?? "null"}, not a non-negative integer")).ToArray();
    }

    static CheckpointException Corrupt(string name, string problem, Exception? inner = null) =>
        new($"{name}: corrupt safetensors header: {problem}", inner);
}
