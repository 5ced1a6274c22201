using Serving.Engine.Config;
using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// FP8 (e4m3) checkpoint weights made whole: a weight stored as F8_E4M3 is its elements' values times its scale, found
/// beside it as `weight_scale_inv` (transformers' fp8 method) or `weight_scale` (compressed-tensors): one number for the
/// tensor, one per output row ([rows, 1]), or one per block of WeightQuantization.BlockSize ([ceil(rows / block rows),
/// ceil(columns / block columns)]). Dequantized in float32 on the CPU, one tensor at a time; the loader then converts it
/// to the model's dtype as it does any weight.
internal static class Fp8Weights
{
    /// e4m3fn's 256 values (1 sign, 4 exponent bits of bias 7, 3 mantissa bits; no infinities, S.1111.111 is NaN).
    static readonly float[] Values = Enumerable.Range(0, 256).Select(Decode).ToArray();

    static float Decode(int bits)
    {
        var (sign, exponent, mantissa) = ((bits & 0x80) != 0 ? -1f : 1f, (bits >> 3) & 0xF, bits & 0x7);
        if (exponent == 0xF && mantissa == 0x7) return float.NaN;
        var magnitude = exponent == 0 ? mantissa / 8f * MathF.Pow(2, -6) : (1 + mantissa / 8f) * MathF.Pow(2, exponent - 7);
        return sign * magnitude;
    }

    /// The scale tensor's name for an FP8 weight ("x.weight" -> "x.weight_scale_inv" or "x.weight_scale"); null when the
    /// checkpoint has neither.
    public static string? ScaleName(SafetensorsCheckpoint checkpoint, string weight) =>
        new[] { weight + "_scale_inv", weight + "_scale" }.FirstOrDefault(checkpoint.Contains);

    /// Columns of one scale along a row where FP8 products serve a weight scaled per block as stored: 128 x 128 blocks
    /// (DeepSeek's and Qwen's -FP8 releases), as Cuda/Fp8Products.ScaleBlock.
    public const int GroupColumns = 128;

    /// The scales the weight's values were stored with, by row and group of GroupColumns columns (float32, CPU, a new
    /// tensor the caller owns): (rows, 1) where the checkpoint stores one for the tensor or one per row; (rows,
    /// ceil(columns / 128)) where it stores one per 128 x 128 block (a block's on each of its rows); null where it stores
    /// other blocks, the tensor is not two-dimensional, or a scale is not a positive finite number (the weight then
    /// stays dequantized). By these the loaded weight becomes FP8 again with the checkpoint's own values
    /// (Fp8Products.QuantizeWeight).
    public static Tensor? StoredScales(SafetensorsCheckpoint checkpoint, string weight, WeightQuantization? quantization)
    {
        var shape = checkpoint.Info(weight).Shape;
        if (shape.Length != 2 || ScaleName(checkpoint, weight) is not { } scaleName) return null;
        var (rows, columns) = (shape[0], shape[1]);
        using var scope = NewDisposeScope();
        var scale = checkpoint.Read(scaleName).to_type(ScalarType.Float32);
        if (!scale.isfinite().logical_and_(scale.gt(HeldScalars.Zero)).all().item<bool>()) return null;
        var groups = (columns + GroupColumns - 1) / GroupColumns;
        var stored = scale.NumberOfElements == 1 ? scale.reshape(1, 1).expand(rows, 1).contiguous()
            : IsPerRow(scale, rows) ? scale.reshape(rows, 1).clone()
            : quantization?.BlockSize is [GroupColumns, GroupColumns] && scale.shape.SequenceEqual([(rows + GroupColumns - 1) / GroupColumns, groups])
                ? scale.repeat_interleave(GroupColumns, 0).narrow(0, 0, rows).contiguous()
            : null;
        return stored?.MoveToOuterDisposeScope();
    }

    // a scale per row of a weight of this many rows: [rows] or [rows, 1]
    static bool IsPerRow(Tensor scale, long rows) => scale.NumberOfElements == rows && (scale.dim() == 1 || scale.shape[^1] == 1);

    /// The whole weight in float32 (CPU), a new tensor the caller owns.
    public static Tensor Read(SafetensorsCheckpoint checkpoint, string weight, WeightQuantization? quantization)
    {
        using var scope = NewDisposeScope();
        var info = checkpoint.Info(weight);
        var scaleName = ScaleName(checkpoint, weight)
            ?? throw new CheckpointException($"weight '{weight}' is stored as F8_E4M3 but the checkpoint has no '{weight}_scale_inv' or '{weight}_scale'");
        using var table = tensor(Values);
        // int32 indices: the byte tensor widened to 4 bytes an element, not 8, beside the float32 result
        var values = table.index_select(0, checkpoint.Read(weight).view(-1).to_type(ScalarType.Int32)).view(info.Shape);
        Scale(values, checkpoint.Read(scaleName).to_type(ScalarType.Float32), weight, scaleName, quantization?.BlockSize);
        return values.MoveToOuterDisposeScope();
    }

    // values (rows, columns) times their scale, in place: one number, one per row, or one per block (a block row at a
    // time, so no full-size copy of the scales is made)
    static void Scale(Tensor values, Tensor scale, string weight, string scaleName, IReadOnlyList<int>? blockSize)
    {
        var shape = values.shape;
        if (scale.NumberOfElements == 1)
        {
            values.mul_(scale.view(1, 1));
            return;
        }
        var (rows, columns) = shape.Length == 2 ? (shape[0], shape[1])
            : throw new CheckpointException($"weight '{weight}' has {shape.Length} dimensions; FP8 scales per row or block need 2");
        if (IsPerRow(scale, rows))
        {
            values.mul_(scale.view(rows, 1));
            return;
        }
        var block = blockSize ?? throw new CheckpointException(
            $"'{scaleName}' has shape {SafetensorsTensorInfo.FormatShape(scale.shape)}, a scale per block, but quantization_config gives no block size");
        var blocks = new[] { (rows + block[0] - 1) / block[0], (columns + block[1] - 1) / block[1] };
        if (!scale.shape.SequenceEqual(blocks))
            throw new CheckpointException($"'{scaleName}' has shape {SafetensorsTensorInfo.FormatShape(scale.shape)}; {block[0]} x {block[1]} " +
                $"blocks of a {rows} x {columns} weight need {SafetensorsTensorInfo.FormatShape(blocks)}");
        for (long i = 0; i < blocks[0]; i++)
        {
            using var scope = NewDisposeScope();
            var row = scale[i].repeat_interleave(block[1]).narrow(0, 0, columns).unsqueeze(0);   // (1, columns)
            values.narrow(0, i * block[0], Math.Min(block[0], rows - i * block[0])).mul_(row);
        }
    }
}
