using System.Buffers.Binary;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI.Pooling;

/// How a pooled vector travels as base64 (vLLM's embed_dtype and endianness on /v1/embeddings and /pooling): each
/// value converted to the element type as torch converts a float32 tensor (round to nearest even; FP8 E4M3 "fn" has
/// no infinity: beyond its range a value becomes NaN, as torch's cast makes it), its bytes in the byte order asked
/// ("native" is this machine's, little-endian on x86 and Arm servers).
internal sealed record VectorEncoding(string ElementType, bool BigEndian)
{
    public static readonly string[] ElementTypes = ["float32", "float16", "bfloat16", "fp8_e4m3", "fp8_e5m2"];
    public static readonly string[] ByteOrders = ["native", "little", "big"];

    /// The request's fields checked (400 naming the field), their defaults float32 and native.
    public static VectorEncoding Of(string? embedDtype, string? endianness)
    {
        var type = embedDtype ?? "float32";
        Check.That(ElementTypes.Contains(type), "embed_dtype", $"embed_dtype must be one of {string.Join(", ", ElementTypes)} (got \"{type}\").");
        var order = endianness ?? "native";
        Check.That(ByteOrders.Contains(order), "endianness", $"endianness must be one of {string.Join(", ", ByteOrders)} (got \"{order}\").");
        return new VectorEncoding(type, order == "big" || order == "native" && !BitConverter.IsLittleEndian);
    }

    public string Base64(float[] vector) => Convert.ToBase64String(Bytes(vector));

    byte[] Bytes(float[] vector)
    {
        var width = ElementType switch { "float32" => 4, "float16" or "bfloat16" => 2, _ => 1 };
        var bytes = new byte[vector.Length * width];
        for (var i = 0; i < vector.Length; i++)
        {
            var at = bytes.AsSpan(i * width, width);
            switch (ElementType)
            {
                case "float32": Write32(at, BitConverter.SingleToUInt32Bits(vector[i])); break;
                case "float16": Write16(at, BitConverter.HalfToUInt16Bits((Half)vector[i])); break;
                case "bfloat16": Write16(at, BFloat16(vector[i])); break;
                case "fp8_e4m3": at[0] = E4M3(vector[i]); break;
                default: at[0] = E5M2(vector[i]); break;
            }
        }
        return bytes;
    }

    void Write32(Span<byte> at, uint bits)
    {
        if (BigEndian) BinaryPrimitives.WriteUInt32BigEndian(at, bits);
        else BinaryPrimitives.WriteUInt32LittleEndian(at, bits);
    }

    void Write16(Span<byte> at, ushort bits)
    {
        if (BigEndian) BinaryPrimitives.WriteUInt16BigEndian(at, bits);
        else BinaryPrimitives.WriteUInt16LittleEndian(at, bits);
    }

    // the upper 16 bits, rounded to nearest even; NaN the quiet NaN torch writes
    static ushort BFloat16(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return 0x7FC0;
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    // FP8 E4M3 (bias 7, no infinity, 0x7F NaN, largest 448): magnitudes from 480 (where rounding would pass 448 by half
    // a step) are NaN
    static byte E4M3(float value) => Fp8(value, mantissaBits: 3, bias: 7, firstOutOfRange: 480f, outOfRange: 0x7F);

    // FP8 E5M2 (bias 15, IEEE-like: largest 57344, from 61440 infinity, NaN stays NaN)
    static byte E5M2(float value) => Fp8(value, mantissaBits: 2, bias: 15, firstOutOfRange: 61440f, outOfRange: 0x7C);

    // Round to nearest even into an 8-bit float of the given mantissa bits and exponent bias: normal values by
    // rounding the float32 bits at the mantissa's last place, subnormal ones (below 2^(1 - bias)) as multiples of the
    // smallest step, which float32 addition of a power of two rounds correctly.
    static byte Fp8(float value, int mantissaBits, int bias, float firstOutOfRange, byte outOfRange)
    {
        var sign = (byte)(BitConverter.SingleToUInt32Bits(value) >> 24 & 0x80);
        var magnitude = MathF.Abs(value);
        if (float.IsNaN(value)) return (byte)(sign | 0x7F);
        if (magnitude >= firstOutOfRange) return (byte)(sign | outOfRange);
        var smallestNormal = MathF.Pow(2, 1 - bias);
        if (magnitude < smallestNormal)
        {
            var step = smallestNormal / (1 << mantissaBits);          // a subnormal's unit
            return (byte)(sign | (byte)MathF.Round(magnitude / step, MidpointRounding.ToEven));   // exact: a power-of-two scale
        }
        var bits = BitConverter.SingleToUInt32Bits(magnitude);
        var drop = 23 - mantissaBits;
        var lastKept = (bits >> drop) & 1;
        bits += (1u << (drop - 1)) - 1 + lastKept;                 // round to nearest even at the kept mantissa's last bit
        var exponent = (int)(bits >> 23) - 127 + bias;
        var mantissa = (bits >> drop) & ((1u << mantissaBits) - 1);
        return (byte)(sign | (byte)(exponent << mantissaBits) | (byte)mantissa);
    }
}
