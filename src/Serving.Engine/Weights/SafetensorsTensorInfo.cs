using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// One tensor's entry in a safetensors header. Offsets are relative to the start of the data section.
public sealed record SafetensorsTensorInfo(string Name, ScalarType DType, long[] Shape, long Begin, long End)
{
    public long NumElements => Shape.Aggregate(1L, (product, dim) => product * dim);
    public long NumBytes => End - Begin;

    public string ShapeText => FormatShape(Shape);

    public static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";
}
