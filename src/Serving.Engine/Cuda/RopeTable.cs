using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// Rotary embedding angles for every position, as the rope kernel reads them: cos and sin of
/// position × inverse frequency, each (maxPositions, headDim / 2) float32 on the device. Built once per model
/// from the model's inverse frequencies (RopeConfig.InverseFrequencies: llama3 or linear scaling applied).
internal sealed class RopeTable : IDisposable
{
    public RopeTable(float[] inverseFrequencies, int maxPositions, Device device)
    {
        using var scope = NewDisposeScope();
        var positions = arange(maxPositions, dtype: ScalarType.Float32, device: device);     // (maxPositions)
        var frequencies = tensor(inverseFrequencies, device: device);                        // (headDim / 2)
        var angles = outer(positions, frequencies);                                          // (maxPositions, headDim / 2)
        // detached: the table lives as long as the model, not as long as the step that happened to build it
        Cos = angles.cos().contiguous().DetachFromDisposeScope();
        Sin = angles.sin().contiguous().DetachFromDisposeScope();
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
