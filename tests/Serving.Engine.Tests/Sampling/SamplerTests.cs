using Serving.Engine.Sampling;
using static Serving.Engine.Tests.Sampling.SamplingTestData;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Sampling;

public class SamplerTests
{
    const int Vocab = 512;

    static int[] Argmax(Tensor logits) =>
        logits.argmax(-1).to(ScalarType.Int32).data<int>().ToArray();

    [Fact]
    public void TemperatureZeroAndTopKOneEqualGreedyArgmax()
    {
        var sampler = new Sampler();
        using var logits = RandomLogits(6, Vocab, seed: 11);
        SamplingState[] rows =
        [
            State(SamplingParams.Greedy), State(new SamplingParams { TopK = 1 }),
            State(new SamplingParams { TopK = 1, Temperature = 1.7f, TopP = 0.5f }), State(SamplingParams.Greedy),
            State(new SamplingParams { Temperature = 1e-7f }), State(new SamplingParams { TopK = 1, Seed = 5 }),
        ];

        var output = sampler.Sample(logits, rows);

        Assert.Equal(Argmax(logits), output.TokenIds);
    }

    [Fact]
    public void TheSameSeedGivesTheSameTokensAndDifferentSeedsDiffer()
    {
        var first = Generate(new SamplingParams { Seed = 42 }, steps: 8);
        var again = Generate(new SamplingParams { Seed = 42 }, steps: 8);
        var other = Generate(new SamplingParams { Seed = 43 }, steps: 8);

        Assert.Equal(first, again);
        Assert.NotEqual(first, other);
        Assert.True(first.Distinct().Count() > 1, "a random row should not keep picking one token");
    }

    /// Every bit of a seed counts (libtorch's CPU generator keeps 32 bits of its own seed; ours is folded from all 64).
    [Fact]
    public void SeedsThatDifferOnlyAboveBit32GiveDifferentTokens()
    {
        var low = Generate(new SamplingParams { Seed = 0x1_0000_0005L }, steps: 8);
        var high = Generate(new SamplingParams { Seed = 0x2_0000_0005L }, steps: 8);
        Assert.NotEqual(low, high);
    }

    [Fact]
    public void SeededRowsGiveTheSameTokensAloneAndInAMixedBatch()
    {
        var seeded = new SamplingParams { Seed = 7, TopP = 0.9f, Temperature = 0.8f };
        var seededWithPenalty = new SamplingParams { Seed = 8, TopK = 50, FrequencyPenalty = 0.5f };
        var alone = Generate(seeded, steps: 6);
        var aloneWithPenalty = Generate(seededWithPenalty, steps: 6);

        SamplingParams[] batch =
        [
            SamplingParams.Greedy, seeded, new SamplingParams { MinP = 0.1f }, seededWithPenalty,
            new SamplingParams { Temperature = 1.3f, TopK = 5 }, SamplingParams.Greedy with { Seed = 99 },
        ];
        var together = GenerateBatch(batch, steps: 6);

        Assert.Equal(alone, together[1]);
        Assert.Equal(aloneWithPenalty, together[3]);
    }

    [Fact]
    public void SamplingDrawsFromTheFilteredDistribution()
    {
        // 0.4, 0.25, 0.2, 0.1, 0.05; top_p = 0.8 keeps the first three, renormalised to 0.4/0.85, ...
        const int draws = 20000;
        var row = LogOf(0.4, 0.25, 0.2, 0.1, 0.05);
        using var logits = Logits(Enumerable.Repeat(row, draws).ToArray());
        var rows = Enumerable.Range(0, draws).Select(_ => State(new SamplingParams { TopP = 0.8f })).ToArray();
        var sampler = new Sampler();

        var tokens = sampler.Sample(logits, rows).TokenIds;

        Assert.Equal([0, 1, 2], tokens.Distinct().Order());
        // 0.02 is about 5.7 standard deviations of a frequency over 20000 draws.
        double[] expected = [0.4 / 0.85, 0.25 / 0.85, 0.2 / 0.85];
        for (var token = 0; token < 3; token++)
        {
            Assert.InRange(tokens.Count(t => t == token) / (double)draws, expected[token] - 0.02, expected[token] + 0.02);
        }
    }

    [Fact]
    public void LogprobsAreTheRawLogSoftmaxWithTopNMostLikelyFirst()
    {
        using var logits = RandomLogits(3, Vocab, seed: 5);
        SamplingState[] rows =
        [
            State(new SamplingParams { Logprobs = 5, Seed = 1, LogitBias = new Dictionary<int, float> { [9] = 100f } }),
            State(SamplingParams.Greedy),
            State(SamplingParams.Greedy with { Logprobs = 0 }),
        ];
        var sampler = new Sampler();
        var before = Row(logits, 0);

        var output = sampler.Sample(logits, rows);

        Assert.Equal(before, Row(logits, 0)); // the caller's logits are left as they were
        Assert.Equal(9, output.TokenIds[0]); // the bias decides the token but not its (raw) log-probability
        Assert.Null(output.Logprobs[1]);
        Assert.Empty(output.Logprobs[2]!.Top);
        foreach (var row in new[] { 0, 2 })
        {
            var expected = LogSoftmax(Row(logits, row));
            var logprob = output.Logprobs[row]!;
            Assert.Equal(output.TokenIds[row], logprob.TokenId);
            Assert.Equal(expected[logprob.TokenId], logprob.Logprob, 1e-5);
            var bestFirst = expected.Select((v, i) => (v, i)).OrderByDescending(t => t.v).Take(logprob.Top.Count);
            Assert.Equal(bestFirst.Select(t => t.i), logprob.Top.Select(t => t.TokenId));
            Assert.All(logprob.Top, t => Assert.Equal(expected[t.TokenId], t.Logprob, 1e-5));
        }
        Assert.Equal(5, output.Logprobs[0]!.Top.Count);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void ProcessorsLeaveTheCallersLogitsAsTheyWereWithoutLogprobs(ScalarType dtype)
    {
        using var logits = RandomLogits(2, Vocab, seed: 7).to(dtype);
        var best = Argmax(logits.to(ScalarType.Float32));
        SamplingState[] rows =
        [
            State(SamplingParams.Greedy with { LogitBias = new Dictionary<int, float> { [3] = 100f } }),
            State(SamplingParams.Greedy with { RepetitionPenalty = 1000f }, prompt: [0], output: [best[1]]),
        ];
        using var before = logits.clone();

        var output = new Sampler().Sample(logits, rows);

        Assert.True(logits.equal(before).all().item<bool>()); // the bias and penalty went to the sampler's own copy
        Assert.Equal(3, output.TokenIds[0]);
        Assert.NotEqual(best[1], output.TokenIds[1]); // the penalty moved row 1's choice
    }

    [Fact]
    public void RejectsLogitsThatDoNotMatchTheRows()
    {
        var sampler = new Sampler();
        using var logits = RandomLogits(2, Vocab, seed: 1);

        Assert.Throws<ArgumentException>(() => sampler.Sample(logits, [State(SamplingParams.Greedy)]));
    }

    static double[] LogSoftmax(float[] logits)
    {
        var max = logits.Max();
        var logSum = Math.Log(logits.Sum(v => Math.Exp(v - max))) + max;
        return logits.Select(v => v - logSum).ToArray();
    }

    static int[] Generate(SamplingParams parameters, int steps) =>
        GenerateBatch([parameters], steps)[0];

    /// Runs `steps` sampling steps over one batch; every row sees the same logits at a step (fixed per step).
    static int[][] GenerateBatch(SamplingParams[] batch, int steps)
    {
        var sampler = new Sampler();
        var states = batch.Select(p => State(p)).ToArray();
        for (var step = 0; step < steps; step++)
        {
            using var row = RandomLogits(1, Vocab, (ulong)(1000 + step));
            using var logits = row.expand(batch.Length, Vocab).contiguous();
            var tokens = sampler.Sample(logits, states).TokenIds;
            for (var i = 0; i < states.Length; i++)
            {
                Append(states[i], tokens[i]);
            }
        }
        return states.Select(s => s.OutputTokenIds.ToArray()).ToArray();
    }
}
