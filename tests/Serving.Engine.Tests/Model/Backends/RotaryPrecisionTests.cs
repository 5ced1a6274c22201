using Serving.Engine.Config;
using Serving.Engine.Model.Backends;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model.Backends;

/// Rotary embedding rounds where each family's transformers code rounds, checked bit for bit in bfloat16 against that
/// code's order of operations (interleaved pairs, as cohere's and ERNIE's): Llama's and GLM's (tables, each product and
/// the sum in the model's dtype), cohere's (q and k in float32 against tables rounded to bfloat16, one rounding at the
/// end) and ERNIE's (float32 throughout, one rounding). The fused kernels compile the same three (ROPE_PRECISION).
public sealed class RotaryPrecisionTests
{
    [Theory]
    [InlineData(RotaryPrecision.ModelDtype)]
    [InlineData(RotaryPrecision.Float32RoundedTables)]
    [InlineData(RotaryPrecision.Float32)]
    public void RotateRoundsWhereTheFamilysCodeRounds(RotaryPrecision precision)
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(seed: 5);
        var x = (randn(7, 3, 16, generator: generator) * 4).to(ScalarType.BFloat16);
        var angles = randn(7, 1, 8, generator: generator) * 3;
        var (cos32, sin32) = (angles.cos(), angles.sin());                       // the tables, float32, one per pair

        var actual = TorchOps.Rotate(x, cos32, sin32, 16, interleaved: true, precision);

        // transformers: cos and sin repeated per pair, rotate_half over the pairs, q * cos + rotate_half(q) * sin
        var (cos, sin) = (cos32.repeat_interleave(2, dim: -1), sin32.repeat_interleave(2, dim: -1));
        static Tensor RotateHalf(Tensor t)
        {
            var pairs = t.view(7, 3, 8, 2);
            return stack([-pairs.select(-1, 1), pairs.select(-1, 0)], dim: -1).flatten(-2);
        }
        var expected = precision switch
        {
            RotaryPrecision.ModelDtype => x * cos.to(ScalarType.BFloat16) + RotateHalf(x) * sin.to(ScalarType.BFloat16),
            RotaryPrecision.Float32RoundedTables => (x.to(ScalarType.Float32) * cos.to(ScalarType.BFloat16).to(ScalarType.Float32)
                + RotateHalf(x).to(ScalarType.Float32) * sin.to(ScalarType.BFloat16).to(ScalarType.Float32)).to(ScalarType.BFloat16),
            _ => (x.to(ScalarType.Float32) * cos + RotateHalf(x).to(ScalarType.Float32) * sin).to(ScalarType.BFloat16),
        };
        Assert.Equal(ScalarType.BFloat16, actual.dtype);
        Assert.True(expected.equal(actual).all().item<bool>(), $"max |difference| {(expected - actual).abs().max().to(ScalarType.Float32).item<float>()}");
        // the three round differently: each check could tell them apart
        var llama = TorchOps.Rotate(x, cos32, sin32, 16, interleaved: true);
        var ernie = TorchOps.Rotate(x, cos32, sin32, 16, interleaved: true, RotaryPrecision.Float32);
        Assert.False(llama.equal(ernie).all().item<bool>());
    }
}
