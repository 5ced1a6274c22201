using Serving.Engine.Config;
using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// Integer-quantized weights made whole: a projection stored as `qweight`, `qzeros` and `scales` (and GPTQ's `g_idx`)
/// in place of its `weight`, each value (integer - zero point) x scale, with one scale and zero point per group of input
/// columns and output row. The integers come packed 32 / bits to an int32, lowest bits first:
/// - awq (AutoAWQ's GEMM layout): qweight [in, out / 8] and qzeros [groups, out / 8] packed along the output, the eight
///   outputs of an int32 in AutoAWQ's order (0, 2, 4, 6, 1, 3, 5, 7 from the lowest bits up); scales [groups, out];
/// - gptq: qweight [in / pack, out] packed along the input, qzeros [groups, out / pack] along the output (stored minus
///   one in the original format), scales [groups, out], g_idx [in] each input column's group (act-order; else column /
///   group size).
/// Dequantized in float32 on the CPU, one projection at a time, as the transformers weight [out, in].
internal static class PackedIntWeights
{
    /// Where AutoAWQ puts output 8j + r of an int32's eight: at nibble Order[r].
    static readonly long[] AwqOrder = [0, 4, 1, 5, 2, 6, 3, 7];

    static string Base(string weight) => weight[..^".weight".Length];

    /// Whether the checkpoint stores this weight ("x.weight") packed ("x.qweight").
    public static bool Holds(SafetensorsCheckpoint checkpoint, string weight) =>
        weight.EndsWith(".weight", StringComparison.Ordinal) && !checkpoint.Contains(weight) && checkpoint.Contains(Base(weight) + ".qweight");

    /// The packed tensors' bytes, for load progress.
    public static long StoredBytes(SafetensorsCheckpoint checkpoint, string weight) =>
        new[] { ".qweight", ".qzeros", ".scales", ".g_idx" }.Select(part => Base(weight) + part)
            .Where(checkpoint.Contains).Sum(name => checkpoint.Info(name).NumBytes);

    /// The weight's [out, in] as the packed tensors give it.
    public static long[] Shape(SafetensorsCheckpoint checkpoint, string weight, WeightQuantization? quantization)
    {
        var packed = checkpoint.Info(Base(weight) + ".qweight").Shape;
        var method = Method(weight, quantization);
        var pack = 32 / method.Bits;
        return method.Method == "awq" ? [packed[1] * pack, packed[0]] : [packed[1], packed[0] * pack];
    }

    /// The whole weight [out, in] in float32 (CPU), a new tensor the caller owns.
    public static Tensor Read(SafetensorsCheckpoint checkpoint, string weight, WeightQuantization? quantization)
    {
        using var scope = NewDisposeScope();
        var method = Method(weight, quantization);
        var name = Base(weight);
        var (qweight, qzeros) = (Part(checkpoint, name, ".qweight"), Part(checkpoint, name, ".qzeros"));
        var scales = Part(checkpoint, name, ".scales").to_type(ScalarType.Float32);
        var (outputs, inputs) = (scales.shape[1], method.Method == "awq" ? qweight.shape[0] : qweight.shape[0] * (32 / method.Bits));
        Tensor values, zeros;
        if (method.Method == "awq")
        {
            values = AwqOutputs(Unpack(qweight, method.Bits));                 // (in, out)
            zeros = AwqOutputs(Unpack(qzeros, method.Bits));                   // (groups, out)
        }
        else
        {
            values = Unpack(qweight.t(), method.Bits).t();                     // (in, out): packed along the input
            zeros = Unpack(qzeros, method.Bits);                               // (groups, out)
            if (method.ZeroPointsMinusOne) zeros = HeldScalars.Add(zeros, 1);
        }
        var groups = GroupOfEachInput(checkpoint, name, inputs, scales.shape[0], method.GroupSize);
        if (values.shape[1] != outputs || zeros.shape[1] != outputs || zeros.shape[0] != scales.shape[0])
            throw new CheckpointException($"'{name}': qweight, qzeros and scales do not agree ({SafetensorsTensorInfo.FormatShape(qweight.shape)}, " +
                $"{SafetensorsTensorInfo.FormatShape(qzeros.shape)}, {SafetensorsTensorInfo.FormatShape(scales.shape)}) for {method.Method}");
        var dequantized = (values.to_type(ScalarType.Float32) - zeros.index_select(0, groups).to_type(ScalarType.Float32))
            * scales.index_select(0, groups);
        return dequantized.t().contiguous().MoveToOuterDisposeScope();
    }

    static WeightQuantization Method(string weight, WeightQuantization? quantization) =>
        quantization is { Method: "awq" or "gptq" } ? quantization
            : throw new CheckpointException($"'{Base(weight)}.qweight' is an integer-packed weight, but config.json's quantization_config " +
                $"names {(quantization is null ? "no method" : quantization.Method)}, not awq or gptq");

    static Tensor Part(SafetensorsCheckpoint checkpoint, string name, string part) =>
        checkpoint.Contains(name + part) ? checkpoint.Read(name + part) : throw new CheckpointException($"missing weight '{name}{part}' in {checkpoint.Directory}");

    // int32 (rows, packed) -> (rows, packed x 32 / bits): the integers of each int32, lowest bits first
    static Tensor Unpack(Tensor packed, int bits)
    {
        var shifts = HeldScalars.Range(0, 32, bits, ScalarType.Int32);
        var values = packed.to_type(ScalarType.Int32).unsqueeze(-1).bitwise_right_shift(shifts).bitwise_and((1 << bits) - 1);
        return values.reshape(packed.shape[0], -1);
    }

    // AutoAWQ's order within each eight outputs undone
    static Tensor AwqOutputs(Tensor unpacked)
    {
        var columns = unpacked.shape[1];
        var order = HeldScalars.Range(0, columns, 8).unsqueeze(1).add(tensor(AwqOrder).unsqueeze(0), HeldScalars.One).view(-1);
        return unpacked.index_select(1, order);
    }

    // (in) int64: g_idx when stored (act-order), else column / group size
    static Tensor GroupOfEachInput(SafetensorsCheckpoint checkpoint, string name, long inputs, long numGroups, int groupSize)
    {
        var groups = checkpoint.Contains(name + ".g_idx")
            ? checkpoint.Read(name + ".g_idx").to_type(ScalarType.Int64)
            : HeldScalars.Range(0, inputs).div(tensor(groupSize == -1 ? inputs : groupSize), rounding_mode: RoundingMode.floor);
        if (groups.shape[0] != inputs || groups.min().item<long>() < 0 || groups.max().item<long>() >= numGroups)
            throw new CheckpointException($"'{name}': the groups of its {inputs} input columns do not match its {numGroups} groups of scales");
        return groups;
    }
}
