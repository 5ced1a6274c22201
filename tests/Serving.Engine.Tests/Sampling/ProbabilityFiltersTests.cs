using Serving.Engine.Sampling;
using static Serving.Engine.Tests.Sampling.SamplingTestData;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Sampling;

public class ProbabilityFiltersTests
{
    // Token 2 is most likely, then 0, 3, 1, 4.
    static readonly float[] Probs = LogOf(0.25, 0.1, 0.4, 0.2, 0.05);

    static int[] Kept(Tensor logits, int row) =>
        Row(logits, row).Select((v, i) => (v, i)).Where(t => !float.IsNegativeInfinity(t.v)).Select(t => t.i).ToArray();

    [Fact]
    public void TopKKeepsTheKLargestPerRow()
    {
        using var logits = Logits(Probs, Probs, Probs);
        using var topK = tensor(new long[] { 1, 3, 5 }).unsqueeze(1);

        ProbabilityFilters.ApplyTopKTopP(logits, topK, topP: null);

        Assert.Equal([2], Kept(logits, 0));
        Assert.Equal([0, 2, 3], Kept(logits, 1));
        Assert.Equal([0, 1, 2, 3, 4], Kept(logits, 2));
        Assert.Equal(Probs[0], Row(logits, 1)[0]); // kept logits are untouched
    }

    [Fact]
    public void TopPKeepsTheSmallestSetReachingP()
    {
        using var logits = Logits(Probs, Probs, Probs, Probs);
        // 0.4 < 0.5 <= 0.4 + 0.25; 0.65 < 0.7 <= 0.85; the top token alone when p is tiny; all at p = 1.
        using var topP = tensor(new[] { 0.5f, 0.7f, 0.01f, 1f }).unsqueeze(1);

        ProbabilityFilters.ApplyTopKTopP(logits, topK: null, topP);

        Assert.Equal([0, 2], Kept(logits, 0));
        Assert.Equal([0, 2, 3], Kept(logits, 1));
        Assert.Equal([2], Kept(logits, 2));
        Assert.Equal([0, 1, 2, 3, 4], Kept(logits, 3));
    }

    [Fact]
    public void TopPAppliesToTheTopKRenormalisedDistribution()
    {
        // After top-k = 2, tokens 2 and 0 hold 0.4/0.65 = 0.615 and 0.385: top_p = 0.6 keeps token 2 only.
        using var logits = Logits(Probs);
        using var topK = tensor(new long[] { 2 }).unsqueeze(1);
        using var topP = tensor(new[] { 0.6f }).unsqueeze(1);

        ProbabilityFilters.ApplyTopKTopP(logits, topK, topP);

        Assert.Equal([2], Kept(logits, 0));
    }

    [Fact]
    public void MinPKeepsTokensAtLeastMinPTimesTheTopProbability()
    {
        using var logits = Logits(Probs, Probs, Probs);
        // Thresholds 0.4 * 0.3 = 0.12, 0.4 * 0.6 = 0.24, 0.
        using var minP = tensor(new[] { 0.3f, 0.6f, 0f }).unsqueeze(1);

        ProbabilityFilters.ApplyMinP(logits, minP);

        Assert.Equal([0, 2, 3], Kept(logits, 0));
        Assert.Equal([0, 2], Kept(logits, 1));
        Assert.Equal([0, 1, 2, 3, 4], Kept(logits, 2));
    }
}
