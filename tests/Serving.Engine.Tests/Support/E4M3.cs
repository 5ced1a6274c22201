namespace Serving.Engine.Tests.Support;

/// FP8 E4M3 (e4m3fn) on the host, by its definition, for the tests' references: sign, 4 exponent bits of bias 7 (0 is
/// subnormal: mantissa / 8 x 2^-6), 3 mantissa bits, 0x7F and 0xFF not numbers; rounding to the nearest value, ties to
/// the even code, saturating at 448 (as cvt.rn.satfinite does).
internal static class E4M3
{
    // the 127 non-negative finite values, ascending with their codes 0x00..0x7E
    static readonly float[] Positive = Enumerable.Range(0, 127).Select(code => (float)Value(code)).ToArray();

    /// The value of a code (NaN codes excluded by the callers).
    public static double Value(int code)
    {
        var (exponent, mantissa) = ((code >> 3) & 0xF, code & 0x7);
        var magnitude = exponent == 0 ? mantissa / 8.0 * Math.Pow(2, -6) : (1 + mantissa / 8.0) * Math.Pow(2, exponent - 7);
        return (code & 0x80) != 0 ? -magnitude : magnitude;
    }

    public static float[] Decode(byte[] codes) => codes.Select(code => (float)Value(code)).ToArray();

    /// The code of the nearest value.
    public static byte Encode(float v)
    {
        var magnitude = Math.Abs(v);
        var code = magnitude >= Positive[^1] ? Positive.Length - 1 : NearestIndex(magnitude);
        return (byte)(code | (v < 0 ? 0x80 : 0));
    }

    /// The nearest value.
    public static float Nearest(float v) => (float)Value(Encode(v));

    /// Whether stored is the nearest e4m3 of v (either neighbour at a tie, whose float rounding may go either way).
    public static bool IsNearest(float v, float stored)
    {
        var nearest = Nearest(v);
        if (stored == nearest) return true;
        var magnitude = Math.Abs(v);
        return Math.Sign(stored) == Math.Sign(v) && Math.Abs(Math.Abs(magnitude - Math.Abs(stored)) - Math.Abs(magnitude - Math.Abs(nearest))) <= 1e-6f * magnitude;
    }

    static int NearestIndex(float magnitude)
    {
        var above = Array.FindIndex(Positive, p => p >= magnitude);
        if (Positive[above] == magnitude || above == 0) return above;
        var (low, high) = (magnitude - Positive[above - 1], Positive[above] - magnitude);
        return low < high ? above - 1 : low > high ? above : above % 2 == 0 ? above : above - 1;
    }
}
