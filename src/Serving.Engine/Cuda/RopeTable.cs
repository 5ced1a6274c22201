using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// Rotary embedding angles for every position, as the rope kernel reads them: cos and sin of
/// position × inverse frequency, each (maxPositions, headDim / 2) float32 on the device. Built once per model
/// from the model's inverse frequencies (llama3 or plain scaling is the caller's business), and scaled by
/// the rope attention factor where a scaling scheme has one.
public sealed class RopeTable : IDisposable
{
    public RopeTable(Tensor inverseFrequencies, int maxPositions, double attentionScaling, Device device)
    {
        using var scope = NewDisposeScope();
        var positions = arange(maxPositions, dtype: ScalarType.Float32, device: device);     // (maxPositions)
        var angles = outer(positions, inverseFrequencies.to(ScalarType.Float32).to(device)); // (maxPositions, headDim / 2)
        Cos = (angles.cos() * attentionScaling).contiguous().MoveToOuterDisposeScope();
        Sin = (angles.sin() * attentionScaling).contiguous().MoveToOuterDisposeScope();
    }

    /// (maxPositions, headDim / 2) float32.
    public Tensor Cos { get; }
    /// (maxPositions, headDim / 2) float32.
    public Tensor Sin { get; }

    /// 1 / theta^(2i / headDim) for i in [0, headDim / 2), with Llama 3's frequency-dependent scaling when given:
    /// long wavelengths are divided by the factor, short ones kept, and the band between interpolated.
    public static float[] InverseFrequencies(double theta, int headDim, Llama3RopeScaling? scaling)
    {
        var frequencies = new float[headDim / 2];
        for (var i = 0; i < frequencies.Length; i++)
        {
            var frequency = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
            frequencies[i] = (float)(scaling is null ? frequency : Llama3Scale(frequency, scaling));
        }

        return frequencies;
    }

    public void Dispose()
    {
        Cos.Dispose();
        Sin.Dispose();
    }

    private static double Llama3Scale(double frequency, Llama3RopeScaling s)
    {
        var wavelength = 2 * Math.PI / frequency;
        var lowFrequencyWavelength = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
        var highFrequencyWavelength = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
        if (wavelength > lowFrequencyWavelength)
        {
            return frequency / s.Factor;
        }

        if (wavelength < highFrequencyWavelength)
        {
            return frequency;
        }

        var smooth = (s.OriginalMaxPositionEmbeddings / wavelength - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
        return (1 - smooth) * frequency / s.Factor + smooth * frequency;
    }
}
