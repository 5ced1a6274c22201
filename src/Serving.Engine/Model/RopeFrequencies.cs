using TorchSharp;
using Serving.Engine.Config;
using static TorchSharp.torch;
using static Serving.Engine.HeldScalars;

namespace Serving.Engine.Model;

/// A rope's (rotaryDim / 2) inverse frequencies, computed as transformers' rope init computes them: the same float32
/// operations in the same order on the CPU, so the bits are transformers' own (a value computed in double and rounded
/// differs from them in the last bit for a third of the frequencies, which turns the angles of late positions).
/// Python's `1.0 / t` is t.reciprocal() times 1.0, `c / t` is t.reciprocal() * c, a Python float meets a float32
/// tensor as float32.
internal static class RopeFrequencies
{
    /// longContext picks longrope's long factors (positions from OriginalMaxPositionEmbeddings on).
    public static float[] Of(RopeConfig rope, int rotaryDim, bool longContext = false)
    {
        using var scope = NewDisposeScope();
        // base ** (arange(0, dim, 2).float() / dim)
        var powers = tensor((float)rope.Base(rotaryDim)).pow(Divide(Range(0, rotaryDim, 2).to_type(ScalarType.Float32), rotaryDim));
        var frequencies = rope.Type switch
        {
            RopeType.Linear => Divide(powers.reciprocal(), rope.Factor),
            RopeType.Llama3 => Llama3(rope, powers.reciprocal()),
            RopeType.LongRope => (tensor((longContext ? rope.LongFactor : rope.ShortFactor).Select(f => (float)f).ToArray()) * powers).reciprocal(),
            RopeType.Yarn => Yarn(rope, powers, rotaryDim),
            _ => powers.reciprocal(),
        };
        return frequencies.data<float>().ToArray();
    }

    /// Llama 3.1: long wavelengths divided by Factor, short ones kept, the band between interpolated smoothly.
    static Tensor Llama3(RopeConfig rope, Tensor frequencies)
    {
        var (context, factor) = ((double)rope.OriginalMaxPositionEmbeddings, rope.Factor);
        var (lowFrequencyWavelength, highFrequencyWavelength) = (context / rope.LowFreqFactor, context / rope.HighFreqFactor);
        using Scalar low = lowFrequencyWavelength.ToScalar(), high = highFrequencyWavelength.ToScalar();
        var wavelength = Multiply(frequencies.reciprocal(), 2 * Math.PI);
        var scaled = where(wavelength > low, Divide(frequencies, factor), frequencies);
        // (context / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
        var smooth = Divide(Subtract(Multiply(wavelength.reciprocal(), context), rope.LowFreqFactor),
            rope.HighFreqFactor - rope.LowFreqFactor);
        // (1 - smooth) * scaled / factor + smooth * scaled
        var smoothed = Divide(Subtract(1, smooth) * scaled, factor).add(smooth * scaled, One);
        var medium = (wavelength < high).logical_not() & (wavelength > low).logical_not();
        return where(medium, smoothed, scaled);
    }

    /// YaRN: the frequencies as they are below the band of dimensions, divided by Factor above it, a linear ramp across it.
    static Tensor Yarn(RopeConfig rope, Tensor powers, int rotaryDim)
    {
        var extrapolation = powers.reciprocal();
        var interpolation = Multiply(powers, rope.Factor).reciprocal();
        var (low, high) = rope.YarnBand(rotaryDim);
        if (low == high) high += 0.001;
        // (arange(dim / 2) - low) / (high - low), clamped to [0, 1]
        var ramp = Divide(Subtract(Range(0, rotaryDim / 2, dtype: ScalarType.Float32), low), high - low)
            .clamp(Zero, One);
        var extrapolationFactor = Subtract(1, ramp);
        // interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor
        return (interpolation * Subtract(1, extrapolationFactor)).add(extrapolation * extrapolationFactor, One);
    }
}
