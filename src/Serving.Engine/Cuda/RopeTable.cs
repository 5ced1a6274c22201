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

    public void Dispose()
    {
        Cos.Dispose();
        Sin.Dispose();
    }
}
