using Serving.Engine;
using Serving.Engine.KVCache;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Tests.Shared;

/// K/V pool contents for kernel checks against float64 references: random values in a pool's element type, and the
/// values a pool holds as float64. Linked into the engine tests and the bench's kernel checks.
public static class KVPoolValues
{
    /// Random K/V in the pool's type: normal for 16/32-bit pools; for FP8, bytes with exponents 5..8 (magnitudes
    /// 1/4 .. 4) and either sign.
    public static Tensor Random(KVCacheDtype dtype, long[] shape, Device device) => dtype.IsFp8
        ? HeldScalars.Multiply(randint(0, 2, shape, dtype: ScalarType.Byte, device: device), 0x80)
            .add(randint(0x28, 0x48, shape, dtype: ScalarType.Byte, device: device), HeldScalars.One)
        : randn(shape, dtype: dtype.Storage, device: device);

    /// The values a pool holds, float64 (FP8 bytes through the host reference decoder).
    public static Tensor Decoded(Tensor pool, KVCacheDtype dtype)
    {
        if (!dtype.IsFp8) return pool.to(ScalarType.Float64);
        var table = tensor(Enumerable.Range(0, 256).Select(b => (double)Fp8E4M3.Decode((byte)b)).ToArray(), device: pool.device);
        return table.index_select(0, pool.flatten().to(ScalarType.Int64)).view(pool.shape);
    }
}
