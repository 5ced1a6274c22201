using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// How an FP8 weight's scales make its values the weight again.
internal enum Fp8Scaling
{
    /// One float32 for the whole weight (1).
    PerTensor,
    /// One per output channel (out), as an FP8 checkpoint with scales per channel stores them.
    PerChannel,
    /// One per Fp8Products.ScaleBlock x ScaleBlock block (out / 128 rows of in / 128, rows padded to a multiple of 4),
    /// as DeepSeek's and Qwen's -FP8 checkpoints store them.
    PerBlock,
}

/// A weight stored as FP8 (E4M3): values (out, in) bytes on the device and the float32 scales that make them the weight
/// again (weight ~ values x scale, as Scaling lays them out). Made by Fp8Products.QuantizeWeight, which also runs its
/// products.
internal sealed record Fp8Weight(Tensor Values, Tensor Scale, Fp8Scaling Scaling, Fp8Products Products) : IDisposable
{
    public long OutFeatures => Values.size(0);
    public long InFeatures => Values.size(1);
    public bool PerChannel => Scaling == Fp8Scaling.PerChannel;
    public long Bytes => Values.NumberOfElements + Scale.NumberOfElements * 4;

    public void Dispose()
    {
        Values.Dispose();
        Scale.Dispose();
    }
}

/// Rows quantized once to e4m3 per tensor for several products (Fp8Products.QuantizeOnce): Values (rows, in) bytes,
/// Scale (1) float32.
internal sealed record QuantizedRows(Tensor Values, Tensor Scale);

/// A mixture's FP8 experts of one kind in one allocation (Fp8Products.Stack): values (experts x rows, columns), expert
/// e's at e x rows, and scales (experts, each expert's scales as its Fp8Weight lays them out, flat) for the grouped
/// kernel; one Scaling for all. Parts: each expert's Fp8Weight (its products a group at a time), its values a view of
/// the stacked ones and its scales its own allocation as quantized (cuBLASLt refused a per-tensor scale 4 bytes after
/// another's, status 15). Owns them all.
internal sealed record Fp8Experts(Tensor Values, Tensor Scales, Fp8Scaling Scaling, IReadOnlyList<Fp8Weight> Parts) : IDisposable
{
    public Fp8Products Products => Parts[0].Products;

    public void Dispose()
    {
        foreach (var part in Parts) part.Dispose();
        Values.Dispose();
        Scales.Dispose();
    }
}
