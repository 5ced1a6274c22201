using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// MXFP4 checkpoint weights made whole (quantization_config mxfp4: gpt-oss's experts): a weight `x` stored as `x_blocks`
/// (uint8 [..., rows, columns / 32, 16], two 4-bit e2m1 values a byte, the low nibble first) and `x_scales` (uint8
/// [..., rows, columns / 32], one power of two per block of 32 values, stored as its exponent plus 127: OCP's e8m0).
/// Dequantized in float32 on the CPU as the [..., rows, columns] it stands for, seen with its last two dimensions swapped
/// as transformers' conversion gives it: the blocks hold each expert's matrix output-major, the checkpoint's unquantized
/// twin input-major (the model keeps it output-major again: WeightBinding.StoredInputMajor).
internal static class Mxfp4Weights
{
    const int BlockValues = 32;

    /// e2m1's 16 values (1 sign, 2 exponent bits of bias 1, 1 mantissa bit; exponent 0 is subnormal: 0 or 0.5).
    static readonly float[] Values = Enumerable.Range(0, 16).Select(Decode).ToArray();

    /// e8m0's scales: 2^(byte - 127) (255, NaN, is refused).
    static readonly float[] Scales = Enumerable.Range(0, 255).Select(e => (float)Math.Pow(2, e - 127)).ToArray();

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
        var (blocksInfo, scalesInfo) = (checkpoint.Info(weight + "_blocks"), checkpoint.Info(weight + "_scales"));
        if (blocksInfo.DType != ScalarType.Byte || scalesInfo.DType != ScalarType.Byte)
            throw new CheckpointException($"weight '{weight}' is stored as MXFP4 but its blocks and scales are {SafetensorsDType.Name(blocksInfo.DType)} " +
                $"and {SafetensorsDType.Name(scalesInfo.DType)}, not U8");
        var (blocks, scales) = (blocksInfo.Shape, scalesInfo.Shape);
        if (blocks.Length < 3 || blocks[^1] != BlockValues / 2 || !scales.SequenceEqual(blocks[..^1]))
            throw new CheckpointException($"weight '{weight}' is stored as MXFP4 but '{weight}_blocks' {SafetensorsTensorInfo.FormatShape(blocks)} " +
                $"and '{weight}_scales' {SafetensorsTensorInfo.FormatShape(scales)} are not [..., rows, blocks, 16] and [..., rows, blocks]");
        return [.. blocks[..^3], blocks[^2] * BlockValues, blocks[^3]];
    }

    /// The whole weight in float32 (CPU), a new tensor the caller owns: a view of the values output-major, its last two
    /// dimensions swapped (not contiguous); made one matrix (an expert's) at a time, so that the work beside it is one
    /// matrix's.
    public static Tensor Read(SafetensorsCheckpoint checkpoint, string weight)
    {
        var shape = Shape(checkpoint, weight);
        using var scope = NewDisposeScope();
        var blocks = checkpoint.Read(weight + "_blocks");   // (..., rows, blocks, 16) uint8
        var scales = checkpoint.Read(weight + "_scales");   // (..., rows, blocks) uint8
        if (scales.eq(tensor((byte)255)).any().item<bool>())
            throw new CheckpointException($"weight '{weight}' has an MXFP4 scale of 255 (NaN) in '{weight}_scales'");
        var (rows, groups) = (blocks.shape[^3], blocks.shape[^2]);
        var (matrixBlocks, matrixScales) = (blocks.view(-1, rows, groups, 16), scales.view(-1, rows, groups));
        var result = empty([matrixBlocks.shape[0], rows, groups * BlockValues]);   // (matrices, rows, columns)
        var (table, powers) = (tensor(Values), tensor(Scales));
        // the low nibble is the even value and the high one the odd: a byte's pair of values, for each of the 256 bytes
        var bytes = HeldScalars.Range(0, 256);
        var pairs = stack([table.index_select(0, bytes.bitwise_and(0xF)), table.index_select(0, bytes.bitwise_right_shift(4))], -1);   // (256, 2)
        for (var i = 0; i < matrixBlocks.shape[0]; i++)
        {
            using var matrixScope = NewDisposeScope();
            var values = pairs.index_select(0, matrixBlocks[i].to_type(ScalarType.Int64).view(-1)).view(rows, groups, BlockValues)
                * powers.index_select(0, matrixScales[i].to_type(ScalarType.Int64).view(-1)).view(rows, groups, 1);
            result[i].copy_(values.view(rows, groups * BlockValues));
        }
        return result.view([.. shape[..^2], shape[^1], shape[^2]]).transpose(-1, -2).MoveToOuterDisposeScope();   // (..., columns, rows)
    }
}
