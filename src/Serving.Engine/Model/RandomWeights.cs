using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Random values for the checkpoint tensors of a preset shape (no files), made on the device. Each value is a function
/// of the seed, the tensor's name and the value's position in the whole tensor (a counter-based generator, as
/// Philox is), so any slice of a tensor can be made alone and every rank of a tensor-parallel model holds its part of
/// the very model one device would hold, whatever the number of ranks, the device or the threads.
///
/// Matrices get N(0, 1/fan-in) (fan-in of the whole tensor) so activations keep unit scale through every layer; norm
/// weights (every "...norm.weight") 1 + N(0, 0.1²), close to trained norms but not a constant that would hide
/// indexing errors; embeddings N(0, 1) and biases N(0, 0.02²).
internal sealed class RandomWeights(IReadOnlyList<WeightBinding> layout, long seed, Device device) : IWeightSource
{
    const long Prime = int.MaxValue;                          // 2^31 - 1: every product of two residues fits in int64
    static readonly long[] Multipliers = [1_103_515_245, 1_664_525_331, 2_027_011_397];
    const long ChunkElements = 1L << 24;                      // values made per pass: bounds the int64 temporaries

    readonly Dictionary<string, long[]> _shapes = layout.ToDictionary(binding => binding.CheckpointName, binding => binding.Shape);

    public long NumBytes(string name) => _shapes[name].Aggregate(4L, (product, dim) => product * dim);

    /// float32 values of the slice, on the device.
    public Tensor Read(string name, TensorSlice slice)
    {
        var shape = _shapes[name];
        var (mean, std) = Distribution(name, shape);
        var values = empty(slice.ShapeIn(shape), ScalarType.Float32, device);
        var rows = values.shape[0];
        var rowElements = Math.Max(1, values.NumberOfElements / Math.Max(1, rows));
        var chunkRows = Math.Max(1, ChunkElements / rowElements);
        for (long row = 0; row < rows; row += chunkRows)
        {
            using var scope = NewDisposeScope();
            var count = Math.Min(chunkRows, rows - row);
            var normal = StandardNormal(Positions(shape, slice, row, count), Offset(name));
            values.narrow(0, row, count).copy_(normal.mul_(std).add_(mean));
        }
        return values;
    }

    static (double Mean, double Std) Distribution(string name, long[] shape) => name switch
    {
        _ when name.EndsWith("norm.weight", StringComparison.Ordinal) => (1.0, 0.1),
        "model.embed_tokens.weight" => (0.0, 1.0),
        _ when shape.Length == 2 => (0.0, 1.0 / Math.Sqrt(shape[1])),
        _ => (0.0, 0.02),
    };

    /// Positions in the whole tensor (row-major) of rows row .. row + count of the slice: (count, ...slice's other dims) int64.
    Tensor Positions(long[] shape, TensorSlice slice, long row, long count)
    {
        if (shape.Length == 1) return arange(slice.Start + row, slice.Start + row + count, ScalarType.Int64, device);
        if (shape.Length != 2) throw new ArgumentException($"random weights are made for vectors and matrices, not shape {SafetensorsTensorInfo.FormatShape(shape)}");
        var (firstRow, rowCount, firstColumn, columns) = slice.Dim == 0
            ? (slice.Start + row, count, 0L, shape[1])
            : (row, count, slice.Start, slice.Length);
        var rowIds = arange(firstRow, firstRow + rowCount, ScalarType.Int64, device).unsqueeze(1);             // (count, 1)
        var columnIds = arange(firstColumn, firstColumn + columns, ScalarType.Int64, device).unsqueeze(0);    // (1, columns)
        return rowIds * shape[1] + columnIds;                                                                    // (count, columns)
    }

    /// The tensor's place in the seed's stream: a stable hash of (seed, name), below the prime.
    long Offset(string name)
    {
        var hash = (ulong)seed * 0x9E3779B97F4A7C15UL;
        foreach (var c in name) hash = (hash ^ c) * 0x100000001B3UL;   // FNV-1a over the name
        return (long)(hash % (ulong)Prime);
    }

    /// N(0, 1) float32 of each position: three rounds of multiply-mod-prime and xor-shift mix (position + offset)
    /// into a residue u in (0, 1), and sqrt(2) erfinv(2u - 1) turns it into a normal value (in float64, so u never
    /// rounds to 0 or 1).
    static Tensor StandardNormal(Tensor positions, long offset)
    {
        var x = positions.add(offset).remainder_(Prime);
        foreach (var multiplier in Multipliers)
        {
            x = x.mul_(multiplier).remainder_(Prime);
            x = x.bitwise_xor_(x.bitwise_right_shift(13));    // x < 2^31 stays below 2^31
        }
        var uniform = x.to_type(ScalarType.Float64).add_(0.5).div_(1L << 31);
        return uniform.mul_(2).sub_(1).erfinv_().mul_(Math.Sqrt(2)).to_type(ScalarType.Float32);
    }
}
