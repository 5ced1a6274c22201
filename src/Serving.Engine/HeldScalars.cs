using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine;

/// The numbers the engine's tensor operations take, as Scalars held for the whole process. A number passed where
/// TorchSharp takes a Scalar becomes a temporary Scalar that the GC may finalize (freeing its native value) while the
/// native call still reads it: "Unknown scalar type", seen in CI. Static fields are never finalized, and a native
/// Scalar is only read, so every thread shares these. A number known only at run time is held by its owner instead
/// (`using var x = value.ToScalar();` through the call, or a field of the object that uses it). The build reports any
/// other (SERV0001, build/ScalarAnalyzer), and a TorchSharp member that makes one inside (SERV0002: `a + b`, `x * 0.5`).
internal static class HeldScalars
{
    public static readonly Scalar Zero = 0.ToScalar(), One = 1.ToScalar(), Two = 2.ToScalar(), False = false.ToScalar();
    public static readonly Scalar MinusInfinity = float.NegativeInfinity.ToScalar();
    /// The largest finite logit a penalty may leave (its negative: the smallest), so that no softmax meets infinity.
    public static readonly Scalar LargestLogit = 1e30.ToScalar(), SmallestLogit = (-1e30).ToScalar();

    /// A tensor and a number (t + v, t - v, v - t, t * v, t / v), the number held through the call: TorchSharp's
    /// operators for a number make a Scalar of it that nothing holds (SERV0002). A whole number stays a whole number (an
    /// int64 tensor stays int64), as with the operators.
    public static Tensor Add(Tensor t, long value) { using var held = value.ToScalar(); return t.add(held, One); }
    public static Tensor Add(Tensor t, double value) { using var held = value.ToScalar(); return t.add(held, One); }
    public static Tensor Subtract(Tensor t, long value) { using var held = value.ToScalar(); return t.sub(held); }
    public static Tensor Subtract(Tensor t, double value) { using var held = value.ToScalar(); return t.sub(held); }
    /// value - t, as TorchSharp's operator computes it (-t + value).
    public static Tensor Subtract(long value, Tensor t) { using var held = value.ToScalar(); return t.neg().add_(held, One); }
    public static Tensor Multiply(Tensor t, long value) { using var held = value.ToScalar(); return t.mul(held); }
    public static Tensor Multiply(Tensor t, double value) { using var held = value.ToScalar(); return t.mul(held); }
    public static Tensor Divide(Tensor t, double value) { using var held = value.ToScalar(); return t.div(held); }

    /// torch.arange(start, stop, step) of whole numbers, its bounds held through the call.
    public static Tensor Range(long start, long stop, long step = 1, ScalarType dtype = ScalarType.Int64, Device? device = null)
    {
        using Scalar first = start.ToScalar(), end = stop.ToScalar(), by = step.ToScalar();
        return arange(first, end, by, dtype, device);
    }
}
