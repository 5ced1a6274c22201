using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// Prompt log-probabilities, computed in the engine from the prefill's logits at every prompt position: vLLM's
/// prompt_logprobs, and echo with logprobs (with max_tokens 0, the request lm-evaluation-harness sends for its
/// loglikelihood tasks). Each prompt token's log-probability must be what the model gives that token after the
/// tokens before it, which a separate request can measure: the prefix as prompt, the token forced by logit_bias,
/// its log-probability from the raw logits of that request's last position.
[Collection("server")]
public sealed class PromptLogprobsTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;
    static readonly int[] Prompt = Fixtures.Reference("llama-gqa").Prompts[0].InputIds;

    [Fact]
    public async Task EachPromptTokenHasTheLogProbabilityTheModelGivesItAfterItsPrefix()
    {
        var choice = await CompleteAsync(new { prompt = Prompt, max_tokens = 1, prompt_logprobs = 3 });
        var promptLogprobs = choice["prompt_logprobs"]!.AsArray();
        Assert.Equal(Prompt.Length, promptLogprobs.Count);
        Assert.Null(promptLogprobs[0]);
        foreach (var i in new[] { 1, 4, Prompt.Length - 1 })
        {
            var entry = promptLogprobs[i]!.AsObject();
            var own = entry[$"{Prompt[i]}"]!;
            var forced = await CompleteAsync(new
            {
                prompt = Prompt[..i], max_tokens = 1, temperature = 0, logprobs = 3,
                logit_bias = new Dictionary<string, int> { [$"{Prompt[i]}"] = 100 }, return_token_ids = true,
            });
            Assert.Equal(Prompt[i], forced["token_ids"]![0]!.GetValue<int>());
            Assert.Equal(forced["logprobs"]!["token_logprobs"]![0]!.GetValue<float>(), own["logprob"]!.GetValue<float>(), 1e-4f);
            var alternatives = forced["logprobs"]!["top_logprobs"]![0]!.AsObject().Select(p => p.Value!.GetValue<float>()).Order().ToArray();
            var ranked = entry.Where(p => p.Value!["rank"]!.GetValue<int>() <= 3).Select(p => p.Value!["logprob"]!.GetValue<float>()).Order().ToArray();
            Assert.Equal(alternatives.Length, ranked.Length);
            for (var k = 0; k < ranked.Length; k++) Assert.Equal(alternatives[k], ranked[k], 1e-4f);
            var rank = own["rank"]!.GetValue<int>();
            Assert.Equal(entry.Count(p => p.Value!["logprob"]!.GetValue<float>() > own["logprob"]!.GetValue<float>()) + 1, Math.Min(rank, 4));
        }
    }

    [Fact]
    public async Task EchoWithLogprobsAndMaxTokens0AnswersThePromptWithItsLogProbabilities()
    {
        const string text = "Hello world, and the rest";
        var (choice, usage) = await CompleteWithUsageAsync(new { prompt = text, echo = true, logprobs = 1, max_tokens = 0, temperature = 0 });
        Assert.Equal(text, choice["text"]!.GetValue<string>());
        Assert.Equal("length", choice["finish_reason"]!.GetValue<string>());
        Assert.Equal(0, usage["completion_tokens"]!.GetValue<int>());
        var logprobs = choice["logprobs"]!;
        var tokens = logprobs["tokens"]!.AsArray();
        Assert.Equal(usage["prompt_tokens"]!.GetValue<int>(), tokens.Count);
        Assert.Equal(text, string.Concat(tokens.Select(t => t!.GetValue<string>())));
        Assert.Null(logprobs["token_logprobs"]![0]);
        Assert.Null(logprobs["top_logprobs"]![0]);
        Assert.All(logprobs["token_logprobs"]!.AsArray().Skip(1), lp => Assert.InRange(lp!.GetValue<float>(), -100f, 0f));
        var offsets = logprobs["text_offset"]!.AsArray().Select(o => o!.GetValue<int>()).ToArray();
        Assert.Equal(0, offsets[0]);
        Assert.True(offsets.Zip(offsets.Skip(1)).All(p => p.First <= p.Second));

        // with generation after the echo, the generated tokens follow the prompt's in the same lists
        var generated = await CompleteAsync(new { prompt = text, echo = true, logprobs = 1, max_tokens = 3, temperature = 0, ignore_eos = true });
        Assert.Equal(tokens.Count + 3, generated["logprobs"]!["tokens"]!.AsArray().Count);
        Assert.StartsWith(text, generated["text"]!.GetValue<string>());
    }

    [Fact]
    public async Task StreamedEchoCarriesThePromptsLogProbabilitiesInItsFirstChunk()
    {
        var (response, events) = await _server.StreamAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = Prompt, echo = true, logprobs = 1, max_tokens = 2, stream = true, ignore_eos = true,
        });
        using (response)
        using (events)
        {
            var first = await events.NextAsync();
            var logprobs = first!["choices"]![0]!["logprobs"]!;
            Assert.Equal(Prompt.Length + 1, logprobs["tokens"]!.AsArray().Count);
            Assert.Null(logprobs["token_logprobs"]![0]);
            await events.ReadAllAsync();
            Assert.True(events.SawDone);
        }
    }

    [Fact]
    public async Task ChatAnswersCarryTheRenderedPromptsLogProbabilities()
    {
        var (status, body) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hello!" } }, max_tokens = 1, prompt_logprobs = 0,
        });
        Assert.Equal(200, status);
        var promptLogprobs = body!["prompt_logprobs"]!.AsArray();
        Assert.Equal(body["usage"]!["prompt_tokens"]!.GetValue<int>(), promptLogprobs.Count);
        Assert.Null(promptLogprobs[0]);
        Assert.All(promptLogprobs.Skip(1), entry => Assert.Single(entry!.AsObject()));
    }

    /// The same request twice (the second finds the prompt in the prefix cache, which prompt log-probabilities
    /// bypass), and with the prompt prefilled four tokens per step: the same figures every time.
    [Fact]
    public async Task PrefixCachingAndChunkedPrefillGiveTheSamePromptLogProbabilities()
    {
        var body = new { prompt = Prompt, max_tokens = 1, prompt_logprobs = 2 };
        var first = Logprobs(await CompleteAsync(body));
        var second = Logprobs(await CompleteAsync(body));
        Assert.Equal(first, second);
        await using var chunked = await RunningServer.StartAsync(["--max-num-batched-tokens", "4"]);
        var (status, response) = await chunked.PostAsync("/v1/completions", new { model = RunningServer.Model, prompt = Prompt, max_tokens = 1, prompt_logprobs = 2 });
        Assert.Equal(200, status);
        var fromChunks = Logprobs(response!["choices"]![0]!);
        Assert.Equal(first.Length, fromChunks.Length);
        for (var i = 0; i < first.Length; i++) Assert.Equal(first[i], fromChunks[i], 1e-4f);
    }

    /// gRPC gives the same figures in the final message (one entry per prompt token after the first).
    [Fact]
    public async Task GrpcGenerateReturnsTheSamePromptLogProbabilities()
    {
        var http = Logprobs(await CompleteAsync(new { prompt = Prompt, max_tokens = 1, prompt_logprobs = 1 }));
        var request = GenerateResult.Greedy(1, tokenIds: Prompt);
        request.Sampling.PromptLogprobs = 1;
        var result = await GenerateResult.ReadAsync(_server.Grpc(), request);
        var grpc = result.Final.PromptLogprobs;
        Assert.Equal(Prompt[1..], grpc.Select(p => p.TokenId));
        for (var i = 0; i < http.Length; i++) Assert.Equal(http[i], grpc[i].Logprob, 1e-5f);
        Assert.All(grpc, p => Assert.True(p.Rank >= 1 && p.Top.Count == 1));
    }

    static float[] Logprobs(JsonNode choice) =>
        [.. choice["prompt_logprobs"]!.AsArray().Skip(1).Select((entry, i) => entry![$"{Prompt[i + 1]}"]!["logprob"]!.GetValue<float>())];

    async Task<JsonNode> CompleteAsync(object fields) => (await CompleteWithUsageAsync(fields)).Choice;

    async Task<(JsonNode Choice, JsonNode Usage)> CompleteWithUsageAsync(object fields)
    {
        var body = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(fields))!.AsObject();
        body["model"] = RunningServer.Model;
        var (status, response) = await _server.PostAsync("/v1/completions", body.ToJsonString());
        Assert.True(status == 200, response?.ToJsonString());
        return (response!["choices"]![0]!, response["usage"]!);
    }
}
