using Grpc.Core;
using Serving.Grpc.V1;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Grpc;

/// Bad calls end with the status code gRPC clients expect and a message naming the field (and the counts,
/// for a prompt too long for the context); the server keeps serving afterwards.
[Collection("server")]
public sealed class GrpcErrorTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    sealed record BadCall(Func<GenerateRequest> Request, StatusCode Code, string? Param, string MessagePart);

    static GenerateRequest Text(Action<SamplingParameters>? sampling = null)
    {
        var request = new GenerateRequest { Text = "Hello world", Sampling = new SamplingParameters { MaxTokens = 4 } };
        sampling?.Invoke(request.Sampling);
        return request;
    }

    static GenerateRequest Chat(params ChatMessage[] messages) =>
        new() { Chat = new ChatInput { Messages = { messages } }, Sampling = new SamplingParameters { MaxTokens = 4 } };

    static readonly Dictionary<string, BadCall> Cases = new()
    {
        ["no input"] = new(() => new GenerateRequest(), StatusCode.InvalidArgument, "input", "set text, token_ids or chat"),
        ["empty text"] = new(() => new GenerateRequest { Text = "" }, StatusCode.InvalidArgument, "text", "must not be empty"),
        ["empty token ids"] = new(() => new GenerateRequest { TokenIds = new TokenIds() }, StatusCode.InvalidArgument, "token_ids", "must not be empty"),
        ["token id beyond vocab"] = new(() => new GenerateRequest { TokenIds = new TokenIds { Ids = { 1, 512 } } }, StatusCode.InvalidArgument, "token_ids", "Token id 512 is outside the vocabulary [0, 512)"),
        ["negative token id"] = new(() => new GenerateRequest { TokenIds = new TokenIds { Ids = { -3 } } }, StatusCode.InvalidArgument, "token_ids", "Token id -3"),
        ["prompt too long"] = new(() => new GenerateRequest { TokenIds = new TokenIds { Ids = { Enumerable.Repeat(5, 256) } } }, StatusCode.InvalidArgument, "token_ids", "maximum context length is 256 tokens. However, your prompt has 256 tokens"),
        ["max_tokens over context"] = new(() => Text(s => s.MaxTokens = 300), StatusCode.InvalidArgument, "max_tokens", "you requested 308 tokens (8 in the prompt, 300 in the completion)"),
        ["empty chat"] = new(() => Chat(), StatusCode.InvalidArgument, "chat.messages", "must not be empty"),
        ["unknown role"] = new(() => Chat(new ChatMessage { Role = "wizard", Content = "hi" }), StatusCode.InvalidArgument, "chat.messages[0].role", "must be one of"),
        ["tool message without its call"] = new(() => Chat(new ChatMessage { Role = "user", Content = "hi" }, new ChatMessage { Role = "tool", Content = "42" }),
            StatusCode.InvalidArgument, "chat.messages[1].tool_call_id", "must be the id of the tool call this message answers"),
        ["temperature"] = new(() => Text(s => s.Temperature = -1), StatusCode.InvalidArgument, "temperature", "temperature must be a finite number >= 0 (got -1)"),
        ["top_p zero"] = new(() => Text(s => s.TopP = 0), StatusCode.InvalidArgument, "top_p", "top_p must be in (0, 1] (got 0)"),
        ["top_k"] = new(() => Text(s => s.TopK = -2), StatusCode.InvalidArgument, "top_k", "top_k must be -1 or 0 (no limit) or at least 1 (got -2)"),
        ["min_p"] = new(() => Text(s => s.MinP = 1.5f), StatusCode.InvalidArgument, "min_p", "min_p must be in [0, 1]"),
        ["n over limit"] = new(() => Text(s => s.N = 17), StatusCode.InvalidArgument, "n", "n must be in [1, 16] (got 17)"),
        ["presence_penalty"] = new(() => Text(s => s.PresencePenalty = 2.5f), StatusCode.InvalidArgument, "presence_penalty", "[-2, 2]"),
        ["frequency_penalty"] = new(() => Text(s => s.FrequencyPenalty = float.NaN), StatusCode.InvalidArgument, "frequency_penalty", "[-2, 2]"),
        ["repetition_penalty"] = new(() => Text(s => s.RepetitionPenalty = 0), StatusCode.InvalidArgument, "repetition_penalty", "greater than 0 (got 0)"),
        ["max_tokens zero"] = new(() => Text(s => s.MaxTokens = 0), StatusCode.InvalidArgument, "max_tokens", "max_tokens must be at least 1 (got 0)"),
        ["min over max tokens"] = new(() => Text(s => s.MinTokens = 5), StatusCode.InvalidArgument, "min_tokens", "must not exceed max_tokens"),
        ["empty stop string"] = new(() => Text(s => s.Stop.Add("")), StatusCode.InvalidArgument, "stop", "must not be empty"),
        ["too many stops"] = new(() => Text(s => s.Stop.Add(Enumerable.Range(0, 17).Select(i => $"s{i}"))), StatusCode.InvalidArgument, "stop", "At most 16 stop sequences"),
        ["stop token beyond vocab"] = new(() => Text(s => s.StopTokenIds.Add(9999)), StatusCode.InvalidArgument, "stop_token_ids", "token id 9999 is outside the vocabulary"),
        ["logit_bias id"] = new(() => Text(s => s.LogitBias.Add(600, 1)), StatusCode.InvalidArgument, "logit_bias", "'600' is not a token id in [0, 512)"),
        ["logit_bias value"] = new(() => Text(s => s.LogitBias.Add(7, 101)), StatusCode.InvalidArgument, "logit_bias", "[-100, 100]"),
        ["top_logprobs without logprobs"] = new(() => Text(s => s.TopLogprobs = 2), StatusCode.InvalidArgument, "top_logprobs", "requires logprobs"),
        ["top_logprobs over limit"] = new(() => Text(s => { s.Logprobs = true; s.TopLogprobs = 21; }), StatusCode.InvalidArgument, "top_logprobs", "[0, 20]"),
        ["request id with a line break"] = new(() => new GenerateRequest { Text = "x", RequestId = "ok\r\ncrit: forged line" }, StatusCode.InvalidArgument, "request_id", "control characters"),
        ["request id with an ANSI escape"] = new(() => new GenerateRequest { Text = "x", RequestId = "\u001b[2Jcleared" }, StatusCode.InvalidArgument, "request_id", "control characters"),
        ["request id too long"] = new(() => new GenerateRequest { Text = "x", RequestId = new string('r', 129) }, StatusCode.InvalidArgument, "request_id", "at most 128 characters (got 129)"),
        ["unknown model"] = new(() => new GenerateRequest { Text = "x", Model = "gpt-9" }, StatusCode.NotFound, "model", "The model `gpt-9` does not exist"),
        ["message over the size limit"] = new(() => new GenerateRequest { Text = new string('a', 70_000) }, StatusCode.ResourceExhausted, null, "exceeds the maximum"),
    };

    public static TheoryData<string> CaseNames => [.. Cases.Keys];

    [Theory]
    [MemberData(nameof(CaseNames))]
    public async Task BadGenerateCallsEndWithTheRightStatusAndAMessageNamingTheField(string name)
    {
        var bad = Cases[name];
        var error = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(_server.Grpc(), bad.Request()));
        Assert.Equal(bad.Code, error.StatusCode);
        Assert.Contains(bad.MessagePart, error.Status.Detail);
        if (bad.Param is not null) Assert.Equal(bad.Param, error.Trailers.GetValue("error-param"));
        await ExpectStillServingAsync();
    }

    /// Kestrel's body limit and gRPC's message limit are the same bound; whichever way the bytes arrive
    /// (the whole message before the server reads, or a frame at a time), the answer is RESOURCE_EXHAUSTED.
    [Theory]
    [InlineData(66_000)]
    [InlineData(1_000_000)]
    public async Task MessagesOverTheSizeLimitAreResourceExhaustedEveryTime(int textLength)
    {
        var request = new GenerateRequest { Text = new string('a', textLength) };
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(_server.Grpc(), request));
            Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        }
        await ExpectStillServingAsync();
    }

    [Fact]
    public async Task CallsWithoutTheRightKeyAreUnauthenticatedButHealthIsOpen()
    {
        foreach (var key in new[] { null, "wrong-key" })
        {
            var client = _server.Grpc(key);
            var error = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(client, GenerateResult.Greedy(2)));
            Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
            Assert.Contains("authorization: Bearer", error.Status.Detail);
            var listing = await Assert.ThrowsAsync<RpcException>(() => client.ListModelsAsync(new ListModelsRequest()).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, listing.StatusCode);
        }
        var health = new global::Grpc.Health.V1.Health.HealthClient(_server.GrpcInvoker(apiKey: null));
        var status = await health.CheckAsync(new global::Grpc.Health.V1.HealthCheckRequest());
        Assert.Equal(global::Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, status.Status);
        await ExpectStillServingAsync();
    }

    [Fact]
    public async Task BadTokenizerAndModelCallsAreRefusedTheSameWay()
    {
        var client = _server.Grpc();
        await ExpectAsync(StatusCode.InvalidArgument, "input", () => client.TokenizeAsync(new TokenizeRequest()).ResponseAsync);
        await ExpectAsync(StatusCode.NotFound, "model", () => client.TokenizeAsync(new TokenizeRequest { Model = "other", Text = "x" }).ResponseAsync);
        await ExpectAsync(StatusCode.InvalidArgument, "chat.messages[1].role", () => client.TokenizeAsync(new TokenizeRequest
        {
            Chat = new ChatInput { Messages = { new ChatMessage { Role = "user", Content = "a" }, new ChatMessage { Content = "b" } } },
        }).ResponseAsync);
        await ExpectAsync(StatusCode.InvalidArgument, "token_ids", () => client.DetokenizeAsync(new DetokenizeRequest { TokenIds = { 3, 700 } }).ResponseAsync);
        await ExpectAsync(StatusCode.NotFound, "model", () => client.GetModelInfoAsync(new GetModelInfoRequest { Model = "other" }).ResponseAsync);
        await ExpectStillServingAsync();
    }

    [Fact]
    public async Task AToolMessageRendersAsOverHttp()
    {
        var grpc = await _server.Grpc().TokenizeAsync(new TokenizeRequest
        {
            Model = RunningServer.Model,
            Chat = new ChatInput
            {
                Messages = { new ChatMessage { Role = "user", Content = "Weather?" }, new ChatMessage { Role = "tool", Content = "sunny", ToolCallId = "call_1" } },
            },
        });
        var (status, http) = await _server.PostAsync("/tokenize", new
        {
            model = RunningServer.Model,
            messages = new object[] { new { role = "user", content = "Weather?" }, new { role = "tool", content = "sunny", tool_call_id = "call_1" } },
        });
        Assert.Equal(200, status);
        Assert.Equal(http!["tokens"]!.AsArray().Select(id => id!.GetValue<int>()), grpc.TokenIds);
    }

    static async Task ExpectAsync(StatusCode code, string param, Func<Task> call)
    {
        var error = await Assert.ThrowsAsync<RpcException>(call);
        Assert.Equal(code, error.StatusCode);
        Assert.Equal(param, error.Trailers.GetValue("error-param"));
    }

    async Task ExpectStillServingAsync()
    {
        var result = await GenerateResult.ReadAsync(_server.Grpc(), GenerateResult.Greedy(2));
        Assert.Equal(2, result.TokenIds().Length);
    }
}
