using Serving.Engine.Sampling;
using static Serving.Engine.Tests.Sampling.SamplingTestData;

namespace Serving.Engine.Tests.Sampling;

public class LogitsProcessorsTests
{
    static readonly float[] Base = [2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 1.5f, 0.0f, 4.0f];

    [Fact]
    public void PenaltiesFollowTheOpenAIAndVllmDefinitions()
    {
        // Prompt holds token 0; output holds token 1 twice and token 2 once.
        var penalized = State(new SamplingParams
        {
            RepetitionPenalty = 2f, FrequencyPenalty = 0.5f, PresencePenalty = 0.25f,
        }, prompt: [0], output: [1, 1, 2]);
        var untouched = State(new SamplingParams(), prompt: [0], output: [1, 1, 2]);
        using var logits = Logits(Base, Base);

        LogitsProcessors.Apply(logits, [penalized, untouched]);

        float[] expected =
        [
            2.0f / 2,                     // prompt token, positive: divided; not in output
            -1.0f * 2 - 0.5f * 2 - 0.25f, // output twice, negative: multiplied, then frequency 2x and presence
            0.5f / 2 - 0.5f * 1 - 0.25f,  // output once, positive: divided, then frequency 1x and presence
            3.0f, -2.0f, 1.5f, 0.0f, 4.0f, // never seen
        ];
        Assert.Equal(expected, Row(logits, 0));
        Assert.Equal(Base, Row(logits, 1));
    }

    [Fact]
    public void RepetitionPenaltyAloneCoversPromptAndOutputOnly()
    {
        var state = State(new SamplingParams { RepetitionPenalty = 1.25f }, prompt: [4], output: [3]);
        using var logits = Logits(Base);

        LogitsProcessors.Apply(logits, [state]);

        var expected = (float[])Base.Clone();
        expected[4] = -2.0f * 1.25f;
        expected[3] = 3.0f / 1.25f;
        Assert.Equal(expected, Row(logits, 0));
    }

    [Fact]
    public void AnExtremeRepetitionPenaltyLeavesTheLogitsFinite()
    {
        // 1e-38 is a valid penalty: 3 / 1e-38 would be infinite, and a softmax over infinity NaN
        var state = State(new SamplingParams { RepetitionPenalty = 1e-38f }, prompt: [4], output: [3]);
        using var logits = Logits(Base);

        LogitsProcessors.Apply(logits, [state]);

        var row = Row(logits, 0);
        Assert.All(row, value => Assert.True(float.IsFinite(value)));
        Assert.Equal(3, Array.IndexOf(row, row.Max()));
        Assert.All(logits.softmax(-1).data<float>().ToArray(), p => Assert.False(float.IsNaN(p)));
    }

    [Fact]
    public void LogitBiasIsAddedToItsRowOnly()
    {
        var biased = State(new SamplingParams { LogitBias = new Dictionary<int, float> { [3] = -5f, [1] = 2.5f } });
        var plain = State(new SamplingParams());
        using var logits = Logits(Base, Base);

        LogitsProcessors.Apply(logits, [biased, plain]);

        var expected = (float[])Base.Clone();
        expected[3] = 3.0f - 5f;
        expected[1] = -1.0f + 2.5f;
        Assert.Equal(expected, Row(logits, 0));
        Assert.Equal(Base, Row(logits, 1));
    }

    [Fact]
    public void AllowedTokenIdsLeaveOnlyThoseTokensAndComeBeforeTheBias()
    {
        var allowed = State(new SamplingParams { AllowedTokenIds = [2, 5], LogitBias = new Dictionary<int, float> { [5] = 1f, [7] = 9f } });
        var free = State(new SamplingParams());
        using var logits = Logits(Base, Base);

        LogitsProcessors.Apply(logits, [allowed, free]);

        var ninf = float.NegativeInfinity;
        Assert.Equal([ninf, ninf, 0.5f, ninf, ninf, 2.5f, ninf, ninf], Row(logits, 0));
        Assert.Equal(Base, Row(logits, 1));
        Assert.Throws<InvalidRequestException>(() => new SamplingParams { AllowedTokenIds = [] }.Validate());
        Assert.Throws<InvalidRequestException>(() => new SamplingParams { AllowedTokenIds = [8] }.Validate(vocabSize: 8));
    }

    [Fact]
    public void BadWordsBanTheirLastTokenAfterTheTokensBeforeIt()
    {
        // words as token ids: [6] (one token: always banned), [1, 3] (3 banned after 1), [2, 4, 5] (5 after 2, 4)
        int[][] words = [[6], [1, 3], [2, 4, 5]];
        var afterOne = new SamplingState(new SamplingParams(), [0], new List<int> { 7, 1 }, [EosId], badWordTokenIds: words);
        var afterTwoFour = new SamplingState(new SamplingParams(), [0], new List<int> { 2, 4 }, [EosId], badWordTokenIds: words);
        var elsewhere = new SamplingState(new SamplingParams(), [0], new List<int> { 4, 2 }, [EosId], badWordTokenIds: words);
        using var logits = Logits(Base, Base, Base);

        LogitsProcessors.Apply(logits, [afterOne, afterTwoFour, elsewhere]);

        var ninf = float.NegativeInfinity;
        Assert.Equal([2.0f, -1.0f, 0.5f, ninf, -2.0f, 1.5f, ninf, 4.0f], Row(logits, 0));
        Assert.Equal([2.0f, -1.0f, 0.5f, 3.0f, -2.0f, ninf, ninf, 4.0f], Row(logits, 1));
        Assert.Equal([2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 1.5f, ninf, 4.0f], Row(logits, 2));
    }

    [Fact]
    public void MinTokensMasksEosAndStopTokenIdsUntilEnoughWereGenerated()
    {
        var parameters = new SamplingParams { MinTokens = 2, StopTokenIds = [5] };
        var fresh = State(parameters);
        var ignoringEos = State(parameters with { IgnoreEos = true });
        var done = State(parameters, output: [0, 1]);
        using var logits = Logits(Base, Base, Base);

        LogitsProcessors.Apply(logits, [fresh, ignoringEos, done]);

        Assert.Equal(float.NegativeInfinity, Row(logits, 0)[EosId]);
        Assert.Equal(float.NegativeInfinity, Row(logits, 0)[5]);
        Assert.Equal(Base[EosId], Row(logits, 1)[EosId]); // ignore_eos: EOS stops nothing, so it stays sampleable
        Assert.Equal(float.NegativeInfinity, Row(logits, 1)[5]);
        Assert.Equal(Base, Row(logits, 2));
    }

    [Fact]
    public void MinTokensKeepsGreedySamplingAwayFromEos()
    {
        // EOS (id 7) has the largest logit: greedy picks it as soon as min_tokens allows.
        var sampler = new Sampler();
        var state = State(SamplingParams.Greedy with { MinTokens = 3, MaxTokens = 10 }, output: []);
        var chosen = new List<int>();
        for (var step = 0; step < 4; step++)
        {
            using var logits = Logits(Base);
            var token = sampler.Sample(logits, [state]).TokenIds[0];
            chosen.Add(token);
            Append(state, token);
            if (token == EosId)
            {
                break;
            }
        }
        Assert.Equal([3, 3, 3, EosId], chosen);
    }
}
