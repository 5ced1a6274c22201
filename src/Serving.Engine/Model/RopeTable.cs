using Serving.Engine.Config;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Rotary embedding angles for every position up to the model's context, as both backends read them: cos and sin
/// of position x inverse frequency, times the rope's attention scaling, each (maxPositions, rotaryDim / 2) float32
/// on the model's device. Built once per model; a step looks rows up by position. Positions from longrope's
/// LongContextStart on use its long factors (the rest its short ones), as vLLM does per position.
internal sealed class RopeTable : IDisposable
{
    public RopeTable(RopeConfig rope, int rotaryDim, int maxPositions, Device device)
    {
        using var scope = NewDisposeScope();
        var shortEnd = Math.Min(maxPositions, rope.LongContextStart);
        var angles = Angles(RopeFrequencies.Of(rope, rotaryDim), 0, shortEnd, device);                // (shortEnd, rotaryDim / 2)
        if (shortEnd < maxPositions)
            angles = cat([angles, Angles(RopeFrequencies.Of(rope, rotaryDim, longContext: true), shortEnd, maxPositions, device)]);
        // transformers multiplies cos and sin by the attention scaling in float32, before casting to the model dtype
        // detached: the table lives as long as the model, not as long as the step that happened to build it
        Cos = HeldScalars.Multiply(angles.cos(), rope.AttentionScaling).contiguous().DetachFromDisposeScope();
        Sin = HeldScalars.Multiply(angles.sin(), rope.AttentionScaling).contiguous().DetachFromDisposeScope();
        RotaryDim = rotaryDim;
    }

    public int RotaryDim { get; }
    /// (maxPositions, rotaryDim / 2) float32.
    public Tensor Cos { get; }
    /// (maxPositions, rotaryDim / 2) float32.
    public Tensor Sin { get; }
    public long MaxPositions => Cos.size(0);

    // position x frequency in float32, as transformers multiplies them
    static Tensor Angles(float[] inverseFrequencies, int from, int to, Device device) =>
        outer(HeldScalars.Range(from, to, dtype: ScalarType.Float32, device: device), tensor(inverseFrequencies, device: device));

    public void Dispose()
    {
        Cos.Dispose();
        Sin.Dispose();
    }
}
