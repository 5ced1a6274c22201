using Serving.Engine.Sampling;

namespace Serving.Engine.Tests.Execution;

/// The engine's request rules, which both servers apply through the same calls: the context length (OpenAI's
/// wording, naming both counts) and the sampling ranges (vLLM's), each failure naming its parameter.
public sealed class RequestRulesTests
{
    [Fact]
    public void PromptPlusMaxTokensBeyondTheContextIsRefusedWithTheCounts()
    {
        var error = Assert.Throws<InvalidRequestException>(() => ContextLength.Check(30, 5, 32, "prompt"));
        Assert.Equal("max_tokens", error.Param);
        Assert.Contains("maximum context length is 32 tokens", error.Message);
        Assert.Contains("you requested 35 tokens (30 in the prompt, 5 in the completion)", error.Message);
        ContextLength.Check(30, 2, 32, "prompt");
    }

    [Fact]
    public void APromptThatLeavesNoRoomIsRefusedUnderItsOwnName()
    {
        var error = Assert.Throws<InvalidRequestException>(() => ContextLength.Check(32, 1, 32, "messages"));
        Assert.Equal("messages", error.Param);
        Assert.Contains("your prompt has 32 tokens, which leaves no room", error.Message);
    }

    [Theory]
    [InlineData("n")]
    [InlineData("max_tokens")]
    [InlineData("min_tokens")]
    [InlineData("temperature")]
    [InlineData("top_p")]
    [InlineData("top_k")]
    [InlineData("min_p")]
    [InlineData("repetition_penalty")]
    [InlineData("stop")]
    [InlineData("stop_token_ids")]
    [InlineData("logit_bias")]
    public void EachOutOfRangeParameterIsNamed(string param)
    {
        var greedy = SamplingParams.Greedy with { MaxTokens = 4 };
        var bad = param switch
        {
            "n" => greedy with { N = 0 },
            "max_tokens" => greedy with { MaxTokens = 0 },
            "min_tokens" => greedy with { MinTokens = 5 },
            "temperature" => greedy with { Temperature = float.PositiveInfinity },
            "top_p" => greedy with { TopP = 0 },
            "top_k" => greedy with { TopK = -2 },
            "min_p" => greedy with { MinP = 1.5f },
            "repetition_penalty" => greedy with { RepetitionPenalty = 0 },
            "stop" => greedy with { Stop = [""] },
            "stop_token_ids" => greedy with { StopTokenIds = [512] },
            _ => greedy with { LogitBias = new Dictionary<int, float> { [512] = 1 } },
        };
        Assert.Equal(param, Assert.Throws<InvalidRequestException>(() => bad.Validate(vocabSize: 512)).Param);
        greedy.Validate(vocabSize: 512);
        (greedy with { Temperature = 5 }).Validate(vocabSize: 512);   // no upper bound, as vLLM
    }
}
