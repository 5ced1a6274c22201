using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// The element types of the safetensors format we read and write, with their torch equivalents.
public static class SafetensorsDType
{
    static readonly (string Name, ScalarType Type)[] Table =
    [
        ("F64", ScalarType.Float64), ("F32", ScalarType.Float32), ("F16", ScalarType.Float16),
        ("BF16", ScalarType.BFloat16), ("I64", ScalarType.Int64), ("I32", ScalarType.Int32),
        ("I16", ScalarType.Int16), ("I8", ScalarType.Int8), ("U8", ScalarType.Byte), ("BOOL", ScalarType.Bool),
    ];

    public static bool TryParse(string name, out ScalarType type)
    {
        foreach (var entry in Table)
            if (entry.Name == name) { type = entry.Type; return true; }
        type = default;
        return false;
    }

    public static string Name(ScalarType type)
    {
        foreach (var entry in Table)
            if (entry.Type == type) return entry.Name;
        throw new ArgumentException($"{type} cannot be stored in safetensors by this writer", nameof(type));
    }

    public static int ElementSize(ScalarType type) => type switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        _ => throw new ArgumentException($"{type} has no safetensors element size", nameof(type)),
    };
}
