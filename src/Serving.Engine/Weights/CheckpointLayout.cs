using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// Checks a checkpoint against the bindings an architecture describes (../Architectures), before any memory is
/// allocated for the model.
internal static class CheckpointLayout
{
    /// Every bound tensor exists with the expected shape and a floating-point dtype (FP8 with its scale beside it), or
    /// packed as integers (awq, gptq) or MXFP4 blocks into a weight of that shape; otherwise a CheckpointException naming
    /// the tensor.
    public static void Validate(SafetensorsCheckpoint checkpoint, IReadOnlyList<WeightBinding> bindings, Config.WeightQuantization? quantization = null)
    {
        foreach (var binding in bindings)
        {
            if (PackedIntWeights.Holds(checkpoint, binding.CheckpointName))
            {
                var shape = PackedIntWeights.Shape(checkpoint, binding.CheckpointName, quantization);
                if (!shape.SequenceEqual(binding.Shape))
                    throw new CheckpointException($"weight '{binding.CheckpointName}' is packed ({quantization?.Method}) as a " +
                        $"{SafetensorsTensorInfo.FormatShape(shape)} weight, expected {SafetensorsTensorInfo.FormatShape(binding.Shape)} from config.json");
                continue;
            }
            if (Mxfp4Weights.Holds(checkpoint, binding.CheckpointName))
            {
                var shape = Mxfp4Weights.Shape(checkpoint, binding.CheckpointName);
                if (!shape.SequenceEqual(binding.Shape))
                    throw new CheckpointException($"weight '{binding.CheckpointName}' is stored as MXFP4 blocks of a " +
                        $"{SafetensorsTensorInfo.FormatShape(shape)} weight, expected {SafetensorsTensorInfo.FormatShape(binding.Shape)} from config.json");
                continue;
            }
            if (!checkpoint.Contains(binding.CheckpointName))
                throw new CheckpointException(
                    $"missing weight '{binding.CheckpointName}' (expected shape {SafetensorsTensorInfo.FormatShape(binding.Shape)}) in {checkpoint.Directory}");
            var info = checkpoint.Info(binding.CheckpointName);
            if (!info.Shape.SequenceEqual(binding.Shape))
                throw new CheckpointException(
                    $"weight '{binding.CheckpointName}' has shape {info.ShapeText}, expected {SafetensorsTensorInfo.FormatShape(binding.Shape)} from config.json");
            if (info.IsFloat8)
            {
                if (Fp8Weights.ScaleName(checkpoint, binding.CheckpointName) is null)
                    throw new CheckpointException(
                        $"weight '{binding.CheckpointName}' is stored as F8_E4M3 but the checkpoint has no '{binding.CheckpointName}_scale_inv' or '{binding.CheckpointName}_scale'");
            }
            else if (info.DType is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
                throw new CheckpointException(
                    $"weight '{binding.CheckpointName}' is stored as {SafetensorsDType.Name(info.DType)}; only F32, F16, BF16 and F8_E4M3 (with its scale) are supported");
        }
    }
}
