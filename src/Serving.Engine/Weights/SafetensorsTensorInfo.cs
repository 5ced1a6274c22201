using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// One tensor's entry in a safetensors header. Offsets are relative to the start of the data section.
public sealed record SafetensorsTensorInfo(string Name, ScalarType DType, long[] Shape, long Begin, long End)
{
    /// Stored as F8_E4M3 (FP8): DType is then Byte, the elements' bits (Fp8Weights gives their values).
    public bool IsFloat8 { get; init; }

    public long NumElements => Shape.Aggregate(1L, (product, dim) => product * dim);
    public long NumBytes => End - Begin;

    public string ShapeText => FormatShape(Shape);

    public static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";
}
