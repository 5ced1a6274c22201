using Serving.Engine.Sampling;
using static Serving.Engine.Tests.Sampling.SamplingTestData;

namespace Serving.Engine.Tests.Sampling;

public class SamplingStateTests
{
    [Fact]
    public void EosStopsWithoutAStopReason()
    {
        var state = State(new SamplingParams { MaxTokens = 10 });

        Assert.Null(state.AppendToken(3));
        Assert.Equal(new SequenceStop(FinishReason.Stop, null), state.AppendToken(EosId));
        Assert.Equal([3, EosId], state.OutputTokenIds);
    }

    [Fact]
    public void IgnoreEosKeepsGoingUntilMaxTokens()
    {
        var state = State(new SamplingParams { MaxTokens = 2, IgnoreEos = true });

        Assert.Null(state.AppendToken(EosId));
        Assert.Equal(new SequenceStop(FinishReason.Length, null), state.AppendToken(EosId));
    }

    [Fact]
    public void AStopTokenIdIsTheStopReason()
    {
        var state = State(new SamplingParams { StopTokenIds = [11, 12] });

        Assert.Equal(new SequenceStop(FinishReason.Stop, 12), state.AppendToken(12));
    }

    [Fact]
    public void NothingStopsBeforeMinTokens()
    {
        // The sampler masks stop ids while fewer than min_tokens exist; the check agrees with it.
        var state = State(new SamplingParams { MinTokens = 3, StopTokenIds = [11] });

        Assert.Null(state.AppendToken(EosId));
        Assert.Null(state.AppendToken(11));
        Assert.Equal(new SequenceStop(FinishReason.Stop, 11), state.AppendToken(11));
    }

    [Theory]
    [InlineData("top_p")]
    [InlineData("temperature")]
    [InlineData("logprobs")]
    [InlineData("min_tokens")]
    [InlineData("logit_bias")]
    public void ValidateNamesTheParameterOutOfRange(string param)
    {
        var parameters = param switch
        {
            "top_p" => new SamplingParams { TopP = 0f },
            "temperature" => new SamplingParams { Temperature = -1f },
            "logprobs" => new SamplingParams { Logprobs = SamplingParams.MaxLogprobs + 1 },
            "min_tokens" => new SamplingParams { MinTokens = 20, MaxTokens = 10 },
            _ => new SamplingParams { LogitBias = new Dictionary<int, float> { [600] = 1f } },
        };

        var error = Assert.Throws<InvalidRequestException>(() => parameters.Validate(vocabSize: 512));

        Assert.Equal(param, error.Param);
    }

    [Fact]
    public void DefaultsAreValid() => new SamplingParams().Validate(vocabSize: 512);
}
