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
        Assert.Equal(0.0, result.TiedTop, 9);
        Assert.Equal(0.5, result.TopSetAgreement, 9);            // no ties: the same as argmax agreement
        Assert.Equal(0.5, result.WithinRoundingAgreement, 9);    // the flips lose 0.1 and 0.5, more than a step at 1 and 2 (2^-7)
    }

    /// A flip to a token one bfloat16 step below bf16's best (at 20: steps of 0.125) is within the reference's rounding;
    /// two steps below is not.
    [Fact]
    public void FlipsWithinOneBfloat16StepOfTheBestCountAsWithinRounding()
    {
        var bf16 = tensor(new float[,] { { 20.125f, 20.0f, 0.0f }, { 20.25f, 20.0f, 0.0f } });
        var fp8 = tensor(new float[,] { { 20.0f, 20.125f, 0.0f }, { 20.0f, 20.25f, 0.0f } });

        var result = KVQualityChecks.Compare("steps", bf16, fp8);

        Assert.Equal(0.0, result.ArgmaxAgreement, 9);
        Assert.Equal(0.5, result.WithinRoundingAgreement, 9);
    }

    /// Where bf16's largest logit is held by two tokens, argmax takes the first; FP8 picking the second is one of bf16's
    /// answers, and counts in TopSetAgreement (not in ArgmaxAgreement). A tie in FP8 alone counts the same way.
    [Fact]
    public void TiedTopsCountAsAgreementWhenTheTopSetsShareAToken()
    {
        var bf16 = tensor(new float[,]
        {
            { 2.0f, 2.0f, 0.0f },   // tied: tokens 0 and 1
            { 2.0f, 2.0f, 0.0f },   // tied, FP8 picks token 2: outside the tie
            { 1.0f, 3.0f, 0.0f },   // no tie; FP8 ties tokens 1 and 2 and argmax takes 1: agrees
            { 1.0f, 3.0f, 0.0f },   // no tie; FP8 ties tokens 0 and 2, both below bf16's answer
        });
        var fp8 = tensor(new float[,]
        {
            { 1.9f, 2.1f, 0.0f },
            { 1.9f, 2.0f, 2.2f },
            { 1.0f, 3.0f, 3.0f },
            { 3.0f, 1.0f, 3.0f },
        });

        var result = KVQualityChecks.Compare("ties", bf16, fp8);

        Assert.Equal(0.25, result.ArgmaxAgreement, 9);           // only row 2 (argmax 1 against 1)
        Assert.Equal(0.5, result.TopSetAgreement, 9);            // rows 0 and 2
        Assert.Equal(0.5, result.TiedTop, 9);                    // rows 0 and 1
        Assert.Equal(0.5, result.WithinRoundingAgreement, 9);    // rows 0 and 2 (row 1's choice is 2 below, row 3's 3 below)
    }
}
