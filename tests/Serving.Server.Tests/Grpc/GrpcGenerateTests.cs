using System.Text.Json.Nodes;
using Serving.Grpc.V1;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Grpc;

/// Generate over gRPC gives what the HTTP API gives for the same request, and what transformers gives.
[Collection("server")]
public sealed class GrpcGenerateTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;
    static readonly FixtureReference Reference = Fixtures.Reference("llama-gqa");

    static int[] Ints(JsonNode? node) => [.. node!.AsArray().Select(n => n!.GetValue<int>())];

    [Fact]
    public async Task TokenIdInputReproducesGreedy16()
    {
        foreach (var prompt in Reference.Prompts)
        {
            var result = await GenerateResult.ReadAsync(_server.Grpc(), GenerateResult.Greedy(16, prompt.InputIds));
            Assert.Equal(prompt.Greedy16, result.TokenIds());
            Assert.Equal(FinishReason.Length, result.Chunks[^1].FinishReason);
            Assert.Equal((prompt.InputIds.Length, 16, prompt.InputIds.Length + 16),
                (result.Final.Usage.PromptTokens, result.Final.Usage.CompletionTokens, result.Final.Usage.TotalTokens));
            var outcome = Assert.Single(result.Final.Sequences);
            Assert.Equal((0, FinishReason.Length), (outcome.Index, outcome.FinishReason));
        }
    }

    [Fact]
    public async Task GreedyTextGenerationStreamsExactlyTheHttpApisTokensAndText()
    {
        var text = Reference.Prompts[1].Text;
        var (status, body) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = text, max_tokens = 40, temperature = 0, return_token_ids = true,
        });
        Assert.Equal(200, status);
        var choice = body!["choices"]![0]!;

        var request = GenerateResult.Greedy(40, text: text, stopAtEos: true);
        request.RequestId = "parity-1";
        var result = await GenerateResult.ReadAsync(_server.Grpc(), request);
        Assert.Equal(Ints(choice["token_ids"]), result.TokenIds());
        Assert.Equal(choice["text"]!.GetValue<string>(), result.Text());
        Assert.Equal(choice["finish_reason"]!.GetValue<string>(), result.Chunks[^1].FinishReason == FinishReason.Stop ? "stop" : "length");
        Assert.Equal(body["usage"]!["prompt_tokens"]!.GetValue<int>(), result.Final.Usage.PromptTokens);
        Assert.Equal("parity-1", result.Final.RequestId);
        var timings = result.Final.Timings;
        Assert.True(timings.Queue.ToTimeSpan() <= timings.TimeToFirstToken.ToTimeSpan());
        Assert.True(timings.TimeToFirstToken.ToTimeSpan() <= timings.Total.ToTimeSpan() && timings.Total.ToTimeSpan() > TimeSpan.Zero);
    }

    [Fact]
    public async Task ChatInputRendersLikeTheHttpChatEndpoint()
    {
        foreach (var chat in Reference.Chat)
        {
            var input = new ChatInput { AddGenerationPrompt = chat.AddGenerationPrompt };
            input.Messages.Add(chat.Messages.Select(m => new ChatMessage { Role = m.Role, Content = m.Content }));
            var tokenized = await _server.Grpc().TokenizeAsync(new TokenizeRequest { Model = RunningServer.Model, Chat = input });
            Assert.Equal(chat.RenderedIds, tokenized.TokenIds);

            var (status, body) = await _server.PostAsync("/v1/chat/completions", new
            {
                model = RunningServer.Model, messages = chat.Messages.Select(m => new { role = m.Role, content = m.Content }),
                add_generation_prompt = chat.AddGenerationPrompt, max_tokens = 8, temperature = 0, ignore_eos = true,
                return_token_ids = true,
            });
            Assert.Equal(200, status);
            var request = new GenerateRequest
            {
                Chat = input, Sampling = new SamplingParameters { MaxTokens = 8, Temperature = 0, IgnoreEos = true },
            };
            var result = await GenerateResult.ReadAsync(_server.Grpc(), request);
            Assert.Equal(chat.RenderedIds.Length, result.Final.Usage.PromptTokens);
            Assert.Equal(body!["usage"]!["prompt_tokens"]!.GetValue<int>(), result.Final.Usage.PromptTokens);
            Assert.Equal(Ints(body["choices"]![0]!["token_ids"]), result.TokenIds());
        }
    }

    [Fact]
    public async Task SeededSamplingWithNAndLogprobsMatchesTheHttpApi()
    {
        var (status, body) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Tell me a story" } },
            n = 3, seed = 1234, temperature = 0.9, top_p = 0.95, top_k = 50, max_tokens = 12, ignore_eos = true,
            logprobs = true, top_logprobs = 2, return_token_ids = true,
        });
        Assert.Equal(200, status);

        var request = new GenerateRequest
        {
            Chat = new ChatInput { Messages = { new ChatMessage { Role = "user", Content = "Tell me a story" } } },
            Sampling = new SamplingParameters
            {
                N = 3, Seed = 1234, Temperature = 0.9f, TopP = 0.95f, TopK = 50, MaxTokens = 12, IgnoreEos = true,
                Logprobs = true, TopLogprobs = 2,
            },
        };
        var result = await GenerateResult.ReadAsync(_server.Grpc(), request);
        var choices = body!["choices"]!.AsArray();
        for (var i = 0; i < 3; i++)
        {
            var index = choices[i]!["index"]!.GetValue<int>();
            Assert.Equal(Ints(choices[i]!["token_ids"]), result.TokenIds(index));
            var logprobs = result.Chunks.Where(c => c.Index == index).SelectMany(c => c.Logprobs).ToList();
            Assert.Equal(result.TokenIds(index), logprobs.Select(l => l.TokenId));
            Assert.All(logprobs, l => Assert.Equal(2, l.Top.Count));
            var http = choices[i]!["logprobs"]!["content"]!.AsArray();
            Assert.Equal(http.Count, logprobs.Count);
            // Same tokens; the values may differ in the last float bits (the two requests shared no batch).
            Assert.All(http.Zip(logprobs), pair => Assert.Equal(pair.First!["logprob"]!.GetValue<float>(), pair.Second.Logprob, 1e-4f));
        }
        Assert.Equal([0, 1, 2], result.Final.Sequences.Select(s => s.Index));
        Assert.Equal(36, result.Final.Usage.CompletionTokens);
    }

    [Fact]
    public async Task AStopTokenIdEndsTheSequenceWithItsReason()
    {
        var prompt = Reference.Prompts[0];
        var request = GenerateResult.Greedy(16, prompt.InputIds);
        var stopId = prompt.Greedy16[4];
        request.Sampling.StopTokenIds.Add(stopId);
        var result = await GenerateResult.ReadAsync(_server.Grpc(), request);
        var stoppedAt = Array.IndexOf(prompt.Greedy16, stopId);
        Assert.Equal(prompt.Greedy16[..(stoppedAt + 1)], result.TokenIds());
        Assert.Equal((FinishReason.Stop, stopId), (result.Chunks[^1].FinishReason, result.Chunks[^1].StopTokenId));
        Assert.Equal(stopId, result.Final.Sequences[0].StopTokenId);
    }

    [Fact]
    public async Task TokenizeDetokenizeAndModelInfoDescribeTheServedModel()
    {
        var client = _server.Grpc();
        foreach (var item in Reference.Tokenize.Take(6))
        {
            var tokenized = await client.TokenizeAsync(new TokenizeRequest { Text = item.Text, ReturnTokenTexts = true });
            Assert.Equal(item.Ids, tokenized.TokenIds);
            Assert.Equal(tokenized.TokenIds.Count, tokenized.TokenTexts.Count);
            var detokenized = await client.DetokenizeAsync(new DetokenizeRequest { TokenIds = { item.Ids } });
            Assert.Equal(_server.Engine.Prompts.Decode(item.Ids), detokenized.Text);
        }
        var info = _server.Engine.Info;
        var model = await client.GetModelInfoAsync(new GetModelInfoRequest { Model = RunningServer.Model });
        Assert.Equal((RunningServer.Model, "LlamaForCausalLM", 8, 2, 8), (model.Id, model.Architecture, model.NumAttentionHeads, model.NumKeyValueHeads, model.HeadDim));
        Assert.Equal((info.MaxModelLen, info.Dtype, info.BlockSize, info.KVBytesPerToken, info.KVCapacityTokens),
            (model.MaxModelLen, model.Dtype, model.BlockSize, model.KvBytesPerToken, model.KvCapacityTokens));
        Assert.Equal(2L * 2 * 2 * 8 * 4, model.KvBytesPerToken);  // K and V x 2 layers x 2 KV heads x head dim 8 x float32
        var list = await client.ListModelsAsync(new ListModelsRequest());
        Assert.Equal(model, Assert.Single(list.Models));
    }

    [Fact]
    public async Task GrpcRequestsAreCountedInTheSameMetricsLabelledGrpc()
    {
        await GenerateResult.ReadAsync(_server.Grpc(), GenerateResult.Greedy(4));
        var metrics = await _server.Http.GetStringAsync("/metrics");
        Assert.Matches("gen_ai_server_request_duration_seconds_count\\{[^}]*protocol=\"grpc\"[^}]*\\} [1-9]", metrics);
        Assert.Matches("gen_ai_server_time_to_first_token_seconds_count\\{[^}]*protocol=\"grpc\"[^}]*\\} [1-9]", metrics);
    }
}
