using Serving.Engine.Config;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Rotary position embedding in transformers' "rotate half" layout: dimension i pairs with i + headDim/2.
/// Angles are computed per step from the token positions (no table sized by the maximum context).
internal sealed class RotaryEmbedding : IDisposable
{
    readonly Tensor _inverseFrequencies;  // (headDim / 2) float32
    readonly ScalarType _dtype;

    public RotaryEmbedding(RopeConfig rope, int headDim, ScalarType dtype, Device device)
    {
        _inverseFrequencies = tensor(rope.InverseFrequencies(headDim), device: device).DetachFromDisposeScope();
        _dtype = dtype;
    }

    /// cos and sin of position x frequency, in float32 like transformers, then cast to the model dtype.
    // positions (numTokens) int64 -> cos, sin (numTokens, 1, headDim / 2)
    public (Tensor Cos, Tensor Sin) Angles(Tensor positions)
    {
        var angles = positions.to_type(ScalarType.Float32).unsqueeze(1) * _inverseFrequencies.unsqueeze(0);
        return (angles.cos().to_type(_dtype).unsqueeze(1), angles.sin().to_type(_dtype).unsqueeze(1));
    }

    /// x * cos + rotate_half(x) * sin, with rotate_half(x) = cat(-x2, x1).
    // x (numTokens, heads, headDim) -> (numTokens, heads, headDim)
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        var halves = x.chunk(2, dim: -1);
        var (x1, x2) = (halves[0], halves[1]);                 // (numTokens, heads, headDim / 2) each
        return cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim: -1);
    }

    public void Dispose() => _inverseFrequencies.Dispose();
}
