using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// MXFP4 checkpoint weights made whole (quantization_config mxfp4: gpt-oss's experts): a weight `x` stored as `x_blocks`
/// (uint8 [..., rows, columns / 32, 16], two 4-bit e2m1 values a byte, the low nibble first) and `x_scales` (uint8
/// [..., rows, columns / 32], one power of two per block of 32 values, stored as its exponent plus 127: OCP's e8m0).
/// Dequantized in float32 on the CPU as the [..., rows, columns] it stands for, then its last two dimensions swapped, as
/// transformers' conversion does: the blocks hold each expert's matrix output-major, the model keeps it input-major.
internal static class Mxfp4Weights
{
    const int BlockValues = 32;

    /// e2m1's 16 values (1 sign, 2 exponent bits of bias 1, 1 mantissa bit; exponent 0 is subnormal: 0 or 0.5).
    static readonly float[] Values = Enumerable.Range(0, 16).Select(Decode).ToArray();

    /// e8m0's 256 scales: 2^(byte - 127); 255 is NaN.
    static readonly float[] Scales = Enumerable.Range(0, 256).Select(e => e == 255 ? float.NaN : (float)Math.Pow(2, e - 127)).ToArray();

    static float Decode(int bits)
    {
        var (sign, exponent, mantissa) = ((bits & 0x8) != 0 ? -1f : 1f, (bits >> 1) & 0x3, bits & 0x1);
        var magnitude = exponent == 0 ? mantissa * 0.5f : (1 + mantissa * 0.5f) * MathF.Pow(2, exponent - 1);
        return sign * magnitude;
    }

    /// Whether the checkpoint stores this weight as MXFP4 blocks and scales instead of itself.
    public static bool Holds(SafetensorsCheckpoint checkpoint, string weight) =>
        !checkpoint.Contains(weight) && checkpoint.Contains(weight + "_blocks") && checkpoint.Contains(weight + "_scales");

    /// The blocks' and scales' bytes, for load progress.
    public static long StoredBytes(SafetensorsCheckpoint checkpoint, string weight) =>
        checkpoint.Info(weight + "_blocks").NumBytes + checkpoint.Info(weight + "_scales").NumBytes;

    /// The weight's shape as the blocks give it: [..., columns, rows] (the last two swapped).
    public static long[] Shape(SafetensorsCheckpoint checkpoint, string weight)
    {
        var blocks = checkpoint.Info(weight + "_blocks").Shape;
        var scales = checkpoint.Info(weight + "_scales").Shape;
        if (blocks.Length < 3 || blocks[^1] != BlockValues / 2 || !scales.SequenceEqual(blocks[..^1]))
            throw new CheckpointException($"weight '{weight}' is stored as MXFP4 but '{weight}_blocks' {SafetensorsTensorInfo.FormatShape(blocks)} " +
                $"and '{weight}_scales' {SafetensorsTensorInfo.FormatShape(scales)} are not [..., rows, blocks, 16] and [..., rows, blocks]");
        return [.. blocks[..^3], blocks[^2] * BlockValues, blocks[^3]];
    }

    /// The whole weight in float32 (CPU), a new tensor the caller owns.
    public static Tensor Read(SafetensorsCheckpoint checkpoint, string weight)
    {
        var shape = Shape(checkpoint, weight);
        using var scope = NewDisposeScope();
        var blocks = checkpoint.Read(weight + "_blocks").to_type(ScalarType.Int32);     // (..., rows, blocks, 16)
        var scaleBytes = checkpoint.Read(weight + "_scales").to_type(ScalarType.Int32);   // (..., rows, blocks)
        var (table, powers) = (tensor(Values), tensor(Scales));   // the scope disposes them
        var low = table.index_select(0, blocks.bitwise_and(0xF).view(-1)).view(blocks.shape);
        var high = table.index_select(0, blocks.bitwise_right_shift(4).view(-1)).view(blocks.shape);
        var scales = powers.index_select(0, scaleBytes.view(-1)).view(scaleBytes.shape);
        // the low nibble is the even value, the high one the odd: (..., rows, blocks, 16, 2) -> (..., rows, blocks, 32)
        var values = stack([low, high], -1).flatten(-2) * scales.unsqueeze(-1);
        return values.flatten(-2).transpose(-1, -2).contiguous().MoveToOuterDisposeScope();   // (..., columns, rows)
    }
}
