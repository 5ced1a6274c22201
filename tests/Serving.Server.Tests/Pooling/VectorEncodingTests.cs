using System.Buffers.Binary;
using Serving.Server.OpenAI.Pooling;

namespace Serving.Server.Tests.Pooling;

/// embed_dtype and endianness (vLLM's): each value the nearest of the element type (ties to the even code), FP8 E4M3
/// NaN past its range as torch's cast makes it, E5M2 infinite; the byte order asked.
public sealed class VectorEncodingTests
{
    static byte[] Encode(string dtype, string endianness, params float[] values) =>
        Convert.FromBase64String(VectorEncoding.Of(dtype, endianness).Base64(values));

    [Fact]
    public void Float32AndFloat16InEitherByteOrder()
    {
        Assert.Equal(BitConverter.GetBytes(1.5f), Encode("float32", "little", 1.5f));
        Assert.Equal(BitConverter.GetBytes(1.5f).Reverse(), Encode("float32", "big", 1.5f));
        Assert.Equal(BitConverter.GetBytes(1.5f), Encode("float32", "native", 1.5f));   // x86 and Arm servers: little-endian
        var half = Encode("float16", "big", 0.1f);
        Assert.Equal(BitConverter.HalfToUInt16Bits((Half)0.1f), BinaryPrimitives.ReadUInt16BigEndian(half));
    }

    [Theory]
    [InlineData(1f, 0x3F80)]
    [InlineData(1f + 1f / 256, 0x3F80)]          // halfway between 1 and 1 + 2^-7: the even one
    [InlineData(1f + 3f / 256, 0x3F82)]          // halfway between 1 + 2^-7 and 1 + 2^-6: the even one
    [InlineData(-2.5f, 0xC020)]
    [InlineData(float.NaN, 0x7FC0)]
    public void Bfloat16RoundsToNearestEven(float value, int bits) =>
        Assert.Equal(bits, BinaryPrimitives.ReadUInt16LittleEndian(Encode("bfloat16", "little", value)));

    /// Every value on a grid over both formats' ranges (subnormals included) becomes the code whose value is nearest,
    /// the even code at a tie, found by decoding all 256 codes.
    [Theory]
    [InlineData("fp8_e4m3", 3, 7)]
    [InlineData("fp8_e5m2", 2, 15)]
    public void Fp8ValuesAreTheNearestCode(string dtype, int mantissaBits, int bias)
    {
        var codes = Enumerable.Range(0, 256).Select(code => (Code: (byte)code, Value: Decode((byte)code, mantissaBits, bias)))
            .Where(c => double.IsFinite(c.Value)).ToList();
        var largest = codes.Max(c => c.Value);
        var values = new List<float>();
        for (var exponent = -1 - bias - mantissaBits; exponent <= (int)Math.Log2(largest); exponent++)
            for (var step = 0; step < 64; step++)
                values.Add((float)(Math.Pow(2, exponent) * (1 + step / 64.0)));
        foreach (var value in values.Where(v => v <= largest).SelectMany(v => new[] { v, -v }))
        {
            var best = codes.Where(c => c.Value == 0 ? !float.IsNegative(value) == (c.Code < 0x80) : Math.Sign(c.Value) == Math.Sign(value))
                .OrderBy(c => Math.Abs(c.Value - value)).ThenBy(c => c.Code & 1).First();
            Assert.True(best.Code == Encode(dtype, "little", value)[0], $"{dtype} {value}: expected 0x{best.Code:X2}");
        }
    }

    [Theory]
    [InlineData("fp8_e4m3", 448f, 0x7E)]
    [InlineData("fp8_e4m3", 464f, 0x7E)]          // halfway to the next step, which is NaN: the even one
    [InlineData("fp8_e4m3", 465f, 0x7F)]          // past it: NaN (no infinity)
    [InlineData("fp8_e4m3", -1e6f, 0xFF)]
    [InlineData("fp8_e4m3", float.NaN, 0xFF)]     // .NET's NaN has its sign bit set, kept as torch keeps it
    [InlineData("fp8_e5m2", 57344f, 0x7B)]
    [InlineData("fp8_e5m2", 61439f, 0x7B)]
    [InlineData("fp8_e5m2", 61440f, 0x7C)]        // halfway to 2^16: infinity
    [InlineData("fp8_e5m2", float.NegativeInfinity, 0xFC)]
    [InlineData("fp8_e5m2", float.NaN, 0xFF)]
    public void Fp8EdgesAreTorchs(string dtype, float value, int code) => Assert.Equal(code, Encode(dtype, "big", value)[0]);

    // an 8-bit float's value from its fields: subnormal below exponent 1; e4m3's 0x7F / 0xFF NaN, e5m2's exponent 31
    // infinity and NaN
    static double Decode(byte code, int mantissaBits, int bias)
    {
        var sign = (code & 0x80) != 0 ? -1 : 1;
        var exponent = (code & 0x7F) >> mantissaBits;
        var mantissa = code & ((1 << mantissaBits) - 1);
        var maxExponent = (1 << (7 - mantissaBits)) - 1;
        if (mantissaBits == 3 && exponent == maxExponent && mantissa == (1 << mantissaBits) - 1) return double.NaN;
        if (mantissaBits == 2 && exponent == maxExponent) return mantissa == 0 ? sign * double.PositiveInfinity : double.NaN;
        return exponent == 0
            ? sign * mantissa * Math.Pow(2, 1 - bias - mantissaBits)
            : sign * (1 + mantissa / (double)(1 << mantissaBits)) * Math.Pow(2, exponent - bias);
    }
}
