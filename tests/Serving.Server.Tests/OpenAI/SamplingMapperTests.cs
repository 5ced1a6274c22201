using System.Text.Json;
using Serving.Engine;
using Serving.Engine.Sampling;
using Serving.Server.Errors;
using Serving.Server.Generation;
using Serving.Server.OpenAI;

namespace Serving.Server.Tests.OpenAI;

public sealed class SamplingMapperTests
{
    static readonly RequestLimits Limits = new(VocabSize: 512, MaxModelLen: 256, MaxN: 4, MaxLogprobs: 20, MaxStopSequences: 3,
        MaxPromptsPerRequest: 8, MaxSeqsPerRequest: 16, MaxQueuedSeqs: 64);

    static CompletionRequest Parse(string json) =>
        JsonSerializer.Deserialize(json, OpenAIJsonContext.Default.CompletionRequest)!;

    /// What a completions request maps to for one prompt of promptTokens tokens.
    static SamplingParams Map(CompletionRequest request, int? maxTokens, int? logprobs, int promptTokens) =>
        SamplingRules.ToSamplingParams(SamplingMapper.Read(request, maxTokens, logprobs, Limits), promptTokens, Limits, "prompt");

    static void Read(CompletionRequest request) => SamplingMapper.Read(request, request.MaxTokens, null, Limits);

    [Fact]
    public void EveryFieldReachesSamplingParams()
    {
        var request = Parse("""
            {"temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "n": 2, "seed": 123456789012,
             "stop": ["x", "yz"], "stop_token_ids": [2, 5], "presence_penalty": 0.5, "frequency_penalty": -0.5,
             "repetition_penalty": 1.1, "logit_bias": {"7": 5, "9": -100}, "ignore_eos": true, "min_tokens": 3,
             "skip_special_tokens": false, "include_stop_str_in_output": true}
            """);
        var p = Map(request, maxTokens: 20, logprobs: 2, promptTokens: 10);
        Assert.Equal((0.7f, 0.9f, 40, 0.05f, 2, 123456789012L), (p.Temperature, p.TopP, p.TopK, p.MinP, p.N, p.Seed));
        Assert.Equal(["x", "yz"], p.Stop);
        Assert.Equal([2, 5], p.StopTokenIds);
        Assert.Equal((0.5f, -0.5f, 1.1f), (p.PresencePenalty, p.FrequencyPenalty, p.RepetitionPenalty));
        Assert.Equal(new Dictionary<int, float> { [7] = 5, [9] = -100 }, p.LogitBias);
        Assert.Equal((true, 3, 20, 2, false, true), (p.IgnoreEos, p.MinTokens, p.MaxTokens, p.Logprobs, p.SkipSpecialTokens, p.IncludeStopStringInOutput));
    }

    [Fact]
    public void DefaultsAreOpenaiDefaultsAndMaxTokensFillsTheContext()
    {
        var p = Map(Parse("{}"), maxTokens: null, logprobs: null, promptTokens: 56);
        Assert.Equal((1, 1f, 1f, 0, 200, null), (p.N, p.Temperature, p.TopP, p.TopK, p.MaxTokens, p.Logprobs));
        Assert.Empty(p.Stop);
        Assert.Null(p.LogitBias);
        Assert.Equal("x", Assert.Single(SamplingMapper.StopStrings(JsonDocument.Parse("\"x\"").RootElement, 3)));
        Assert.Equal(0, Map(Parse("""{"top_k": -1}"""), 1, null, 1).TopK);
    }

    /// The engine's rules are vLLM's: temperature has no upper bound (OpenAI's is 2), top_k may exceed the vocabulary.
    [Fact]
    public void ValuesVllmAcceptsAreAccepted()
    {
        Assert.Equal(2.5f, Map(Parse("""{"temperature": 2.5}"""), 1, null, 1).Temperature);
        Assert.Equal(100000, Map(Parse("""{"top_k": 100000}"""), 1, null, 1).TopK);
    }

    [Theory]
    [InlineData("""{"temperature": -0.1}""", "temperature")]
    [InlineData("""{"top_p": 0}""", "top_p")]
    [InlineData("""{"top_p": 1.5}""", "top_p")]
    [InlineData("""{"top_k": -2}""", "top_k")]
    [InlineData("""{"min_p": 2}""", "min_p")]
    [InlineData("""{"n": 0}""", "n")]
    [InlineData("""{"n": 5}""", "n")]
    [InlineData("""{"presence_penalty": 3}""", "presence_penalty")]
    [InlineData("""{"frequency_penalty": -3}""", "frequency_penalty")]
    [InlineData("""{"repetition_penalty": 0}""", "repetition_penalty")]
    [InlineData("""{"min_tokens": -1}""", "min_tokens")]
    [InlineData("""{"max_tokens": 0}""", "max_tokens")]
    [InlineData("""{"stop": ["a", "b", "c", "d"]}""", "stop")]
    [InlineData("""{"stop": [""]}""", "stop")]
    [InlineData("""{"stop": 5}""", "stop")]
    [InlineData("""{"stop": ["a", 1]}""", "stop")]
    [InlineData("""{"stop_token_ids": [512]}""", "stop_token_ids")]
    [InlineData("""{"logit_bias": {"abc": 1}}""", "logit_bias")]
    [InlineData("""{"logit_bias": {"600": 1}}""", "logit_bias")]
    [InlineData("""{"logit_bias": {"-1": 1}}""", "logit_bias")]
    [InlineData("""{"logit_bias": {"5": 101}}""", "logit_bias")]
    [InlineData("""{"stream_options": {"include_usage": true}}""", "stream_options")]
    public void OutOfRangeFieldsAre400NamingTheField(string json, string param)
    {
        // the server's own caps throw ApiException, the engine's rules InvalidRequestException: both answer this 400
        var error = ErrorMapping.ToApiException(Assert.ThrowsAny<Exception>(() => Read(Parse(json))));
        Assert.Equal((400, param, "invalid_request_error"), (error.Status, error.Param, error.Type));
    }

    [Fact]
    public void APromptThatLeavesNoRoomNamesBothCounts()
    {
        var error = Assert.Throws<InvalidRequestException>(() => Map(Parse("{}"), null, null, 256));
        Assert.Equal("prompt", error.Param);
        Assert.Contains("256 tokens", error.Message);
        var tooMany = Assert.Throws<InvalidRequestException>(() => Map(Parse("{}"), 100, null, 200));
        Assert.Equal("max_tokens", tooMany.Param);
        Assert.Contains("maximum context length is 256", tooMany.Message);
        Assert.Contains("300 tokens (200 in the prompt, 100 in the completion)", tooMany.Message);
        var minOverMax = Assert.Throws<InvalidRequestException>(() => Map(Parse("""{"min_tokens": 9}"""), 5, null, 1));
        Assert.Equal("min_tokens", minOverMax.Param);
    }
}
