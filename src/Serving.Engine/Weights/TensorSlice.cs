namespace Serving.Engine.Weights;

/// Entries Start .. Start + Length along dimension Dim of a tensor, the other dimensions whole: the part of a
/// checkpoint tensor one tensor-parallel rank loads (rows of a column-parallel matrix, columns of a row-parallel one).
internal readonly record struct TensorSlice(int Dim, long Start, long Length)
{
    public static TensorSlice Whole(long[] shape) => new(0, 0, shape[0]);

    public bool IsWhole(long[] shape) => Dim == 0 && Start == 0 && Length == shape[0];

    /// The slice of a tensor, as a view.
    public TorchSharp.torch.Tensor Of(TorchSharp.torch.Tensor tensor) => tensor.narrow(Dim, Start, Length);

    /// The slice's shape within a tensor of shape.
    public long[] ShapeIn(long[] shape)
    {
        if (Dim < 0 || Dim >= shape.Length || Start < 0 || Length < 0 || Start + Length > shape[Dim])
            throw new ArgumentOutOfRangeException(nameof(shape),
                $"entries {Start}..{Start + Length} of dimension {Dim} lie outside a tensor of shape {SafetensorsTensorInfo.FormatShape(shape)}");
        var sliced = shape.ToArray();
        sliced[Dim] = Length;
        return sliced;
    }
}
