using static TorchSharp.torch;

namespace Serving.Engine.KVCache;

/// How the KV pool stores one element of K or V (vLLM's --kv-cache-dtype): a float type libtorch has, or FP8 E4M3,
/// which the fused CUDA kernels quantize on write and dequantize on read with a scale per layer for K and one for V
/// (libtorch here has no FP8 type, so its pool tensors are raw bytes).
public sealed class KVCacheDtype
{
    public static readonly KVCacheDtype Float32 = new("float32", ScalarType.Float32, 1);
    public static readonly KVCacheDtype BFloat16 = new("bfloat16", ScalarType.BFloat16, 1);
    public static readonly KVCacheDtype Float16 = new("float16", ScalarType.Float16, 1);
    /// 8 bits: 1 sign, 4 exponent (bias 7), 3 mantissa; largest magnitude 448, no infinities.
    public static readonly KVCacheDtype Fp8E4M3 = new("fp8_e4m3", ScalarType.Byte, 448);

    KVCacheDtype(string name, ScalarType storage, float maxMagnitude) => (Name, Storage, MaxMagnitude) = (name, storage, maxMagnitude);

    /// The name model_info and logs show (vLLM's spelling).
    public string Name { get; }
    /// The libtorch element type of the pool tensors.
    public ScalarType Storage { get; }
    /// Bytes per element.
    public int Size => Storage switch { ScalarType.Float32 => 4, ScalarType.Byte => 1, _ => 2 };
    /// Quantized: elements are stored as value / scale and need the fused kernels.
    public bool IsFp8 => Storage == ScalarType.Byte;
    /// The largest magnitude an element holds (calibrated scales map the observed maximum here).
    public float MaxMagnitude { get; }

    /// The pool dtype that stores elements of a model dtype as they are.
    public static KVCacheDtype Of(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => Float32,
        ScalarType.BFloat16 => BFloat16,
        ScalarType.Float16 => Float16,
        _ => throw new ArgumentException($"a KV cache cannot store {dtype} elements"),
    };

    /// --kv-cache-dtype: auto (the model's dtype), bfloat16, float16, float32 (and torch's aliases), fp8 or fp8_e4m3.
    public static KVCacheDtype Resolve(string requested, ScalarType modelDtype) => requested.ToLowerInvariant() switch
    {
        "auto" => Of(modelDtype),
        "fp8" or "fp8_e4m3" => Fp8E4M3,
        "fp8_e5m2" => throw new ArgumentException("--kv-cache-dtype fp8_e5m2 is not supported; use fp8 (fp8_e4m3)", "kv-cache-dtype"),
        var name => Of(Model.ModelDtype.Parse(name, "kv-cache-dtype")),
    };

    public override string ToString() => Name;
}

/// FP8 E4M3 (OCP "E4M3FN": no infinities, 0x7F and 0xFF are NaN) on the host: the reference the kernels' hardware
/// conversions are checked against.
public static class Fp8E4M3
{
    /// The value of one byte: sign, exponent (bias 7) and 3 mantissa bits; exponent 0 is subnormal.
    public static float Decode(byte bits)
    {
        var sign = (bits & 0x80) != 0 ? -1f : 1f;
        var (exponent, mantissa) = ((bits >> 3) & 0xF, bits & 0x7);
        if (exponent == 0xF && mantissa == 0x7) return float.NaN;
        return sign * (exponent == 0 ? mantissa / 8f * MathF.Pow(2, -6) : (1 + mantissa / 8f) * MathF.Pow(2, exponent - 7));
    }

    /// The nearest representable byte (ties to even mantissa), saturating at ±448 as the kernels' satfinite does.
    public static byte Encode(float value)
    {
        if (float.IsNaN(value)) return 0x7F;
        var sign = value < 0 ? 0x80 : 0;
        var best = 0;
        var bestError = float.PositiveInfinity;
        for (var bits = 0; bits < 0x7F; bits++)
        {
            var error = MathF.Abs(Decode((byte)bits) - MathF.Min(MathF.Abs(value), 448));
            if (error < bestError || (error == bestError && (bits & 1) == 0)) (best, bestError) = (bits, error);
        }
        return (byte)(sign | best);
    }
}
