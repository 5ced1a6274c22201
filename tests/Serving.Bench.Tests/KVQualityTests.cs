using static TorchSharp.torch;

namespace Serving.Bench.Tests;

/// The FP8-against-bf16 figures of --kv-quality on logits whose answers are known: which positions flip, how close
/// to a tie they were, and whether bf16's answer stays in FP8's top five.
public sealed class KVQualityTests
{
    [Fact]
    public void FlipsAreMeasuredAgainstTheReferenceTopTwoGap()
    {
        var bf16 = tensor(new float[,]
        {
            { 3.0f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f },   // clear lead 2.0: kept
            { 1.0f, 0.9f, 0.0f, 0.0f, 0.0f, 0.0f },   // near-tie 0.1: flips below
            { 0.0f, 0.0f, 5.0f, 0.0f, 0.0f, 1.0f },   // lead 4.0: kept
            { 2.0f, 1.5f, 1.4f, 1.3f, 1.2f, 1.1f },   // lead 0.5: flips far (bf16's answer falls out of the top five)
        });
        var fp8 = tensor(new float[,]
        {
            { 2.9f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f },
            { 0.8f, 0.95f, 0.0f, 0.0f, 0.0f, 0.0f },
            { 0.0f, 0.0f, 5.0f, 0.0f, 0.0f, 1.0f },
            { 1.0f, 1.5f, 1.4f, 1.3f, 1.2f, 1.1f },
        });

        var result = KVQualityChecks.Compare("case", bf16, fp8);

        Assert.Equal(4, result.Positions);
        Assert.Equal(0.5, result.ArgmaxAgreement, 9);
        Assert.Equal(1.0, result.MaxAbsError, 6);
        Assert.Equal(0.5, result.LargestFlippedGap, 6);          // the larger of the flipped positions' leads (0.1, 0.5)
        Assert.Equal(0.5, result.MedianTopGap, 6);               // leads 2.0, 0.1, 4.0, 0.5: torch's lower median
        Assert.Equal(0.75, result.Top5Agreement, 9);
        Assert.Equal(0, result.NonFiniteBf16 + result.NonFiniteFp8);
    }
}
