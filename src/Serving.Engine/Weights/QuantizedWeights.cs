using Serving.Engine.Config;
using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// How a bound weight is stored when it is quantized, for the checks and the loader: FP8 (`x.weight` as F8_E4M3 with its
/// scale, Fp8Weights), packed integers (`x.qweight` and its groups' scales and zero points instead of `x.weight`,
/// PackedIntWeights) or MXFP4 (`x_blocks` and `x_scales` instead of `x`, Mxfp4Weights). Each is dequantized whole to
/// float32 as it loads.
internal static class QuantizedWeights
{
    /// The weight in float32 (CPU), a new tensor the caller owns; null when it is stored plainly.
    public static Tensor? Read(SafetensorsCheckpoint checkpoint, string weight, WeightQuantization? quantization) =>
        PackedIntWeights.Holds(checkpoint, weight) ? PackedIntWeights.Read(checkpoint, weight, quantization)
        : Mxfp4Weights.Holds(checkpoint, weight) ? Mxfp4Weights.Read(checkpoint, weight)
        : checkpoint.Info(weight).IsFloat8 ? Fp8Weights.Read(checkpoint, weight, quantization)
        : null;

    /// The scales an FP8 weight was stored with, by row and group of columns (Fp8Weights.StoredScales), a new tensor the
    /// caller owns; null for any other weight.
    public static Tensor? Fp8StoredScales(SafetensorsCheckpoint checkpoint, string weight, WeightQuantization? quantization) =>
        checkpoint.Contains(weight) && checkpoint.Info(weight).IsFloat8 ? Fp8Weights.StoredScales(checkpoint, weight, quantization) : null;

    /// The bytes the checkpoint stores for the weight.
    public static long StoredBytes(SafetensorsCheckpoint checkpoint, string weight) =>
        PackedIntWeights.Holds(checkpoint, weight) ? PackedIntWeights.StoredBytes(checkpoint, weight)
        : Mxfp4Weights.Holds(checkpoint, weight) ? Mxfp4Weights.StoredBytes(checkpoint, weight)
        : checkpoint.Info(weight).NumBytes;
}
