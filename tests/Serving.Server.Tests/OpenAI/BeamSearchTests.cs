using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// vLLM's use_beam_search through the completions and chat APIs and gRPC: n beams come back as n choices ranked by
/// score, each whole in one streamed chunk; one beam is greedy decoding; what a search cannot honour is a 400 naming it.
[Collection("server")]
public sealed class BeamSearchTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    [Fact]
    public async Task CompletionsListTheBeamsBestFirst()
    {
        var (status, body) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello", max_tokens = 6, n = 3, use_beam_search = true, ignore_eos = true,
            logprobs = 1, return_token_ids = true,
        });
        Assert.Equal(200, status);
        var choices = body!["choices"]!.AsArray();
        Assert.Equal([0, 1, 2], choices.Select(c => c!["index"]!.GetValue<int>()));
        var promptTokens = body["usage"]!["prompt_tokens"]!.GetValue<int>();
        var scores = choices.Select(c =>
        {
            var logprobs = c!["logprobs"]!["token_logprobs"]!.AsArray().Select(l => l!.GetValue<double>()).ToArray();
            Assert.Equal(6, logprobs.Length);
            Assert.Equal("length", c["finish_reason"]!.GetValue<string>());
            return logprobs.Sum() / (promptTokens + logprobs.Length);
        }).ToArray();
        Assert.Equal(scores.OrderDescending(), scores);
        Assert.Equal(3, choices.Select(c => c!["text"]!.GetValue<string>()).Distinct().Count());
        Assert.Equal(18, body["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task OneBeamIsTheGreedyAnswer()
    {
        var greedy = await TextAsync(new { model = RunningServer.Model, prompt = "Hello", max_tokens = 8, temperature = 0, ignore_eos = true });
        var beam = await TextAsync(new { model = RunningServer.Model, prompt = "Hello", max_tokens = 8, use_beam_search = true, ignore_eos = true });
        Assert.Equal(greedy, beam);

        var (status, chat) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 5,
            temperature = 0, ignore_eos = true,
        });
        Assert.Equal(200, status);
        var (beamStatus, beamChat) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 5,
            use_beam_search = true, ignore_eos = true,
        });
        Assert.Equal(200, beamStatus);
        Assert.Equal(Content(chat!, 0), Content(beamChat!, 0));
    }

    [Fact]
    public async Task AStreamBringsEachBeamWholeInOneChunk()
    {
        object Request(bool stream) => new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 5, n = 2,
            use_beam_search = true, ignore_eos = true, length_penalty = 0.5, stream,
        };
        var (_, whole) = await _server.PostAsync("/v1/chat/completions", Request(stream: false));
        var (response, events) = await _server.StreamAsync("/v1/chat/completions", Request(stream: true));
        using (response)
        using (events)
        {
            var chunks = await events.ReadAllAsync();
            Assert.True(events.SawDone);
            foreach (var index in new[] { 0, 1 })
            {
                var mine = chunks.Select(c => c["choices"]!.AsArray().SingleOrDefault(choice => choice!["index"]!.GetValue<int>() == index))
                    .Where(c => c?["delta"]?["content"]?.GetValue<string>() is { Length: > 0 }).ToList();
                var chunk = Assert.Single(mine)!;
                Assert.Equal(Content(whole!, index), chunk["delta"]!["content"]!.GetValue<string>());
                Assert.Equal("length", chunk["finish_reason"]!.GetValue<string>());
            }
        }
    }

    [Fact]
    public async Task GrpcGivesTheSameBeams()
    {
        var (_, body) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello", max_tokens = 6, n = 2, use_beam_search = true, ignore_eos = true,
        });
        var grpc = await GenerateResult.ReadAsync(_server.Grpc(), new Serving.Grpc.V1.GenerateRequest
        {
            Model = RunningServer.Model, Text = "Hello",
            Sampling = new() { MaxTokens = 6, N = 2, UseBeamSearch = true, IgnoreEos = true },
        });
        Assert.Equal(body!["choices"]![0]!["text"]!.GetValue<string>(), grpc.Text(0));
        Assert.Equal(body["choices"]![1]!["text"]!.GetValue<string>(), grpc.Text(1));
    }

    [Theory]
    [InlineData("n", """ "n": 11 """)]
    [InlineData("stop", """ "stop": ["."] """)]
    [InlineData("presence_penalty", """ "presence_penalty": 0.5 """)]
    [InlineData("logit_bias", """ "logit_bias": {"7": 3} """)]
    [InlineData("structured_outputs", """ "structured_outputs": {"choice": ["yes", "no"]} """)]
    public async Task WhatASearchCannotHonourIsA400NamingIt(string param, string field)
    {
        var (status, body) = await _server.PostAsync("/v1/completions",
            $$"""{"model": "{{RunningServer.Model}}", "prompt": "Hello", "max_tokens": 4, "use_beam_search": true, {{field}}}""");
        Assert.Equal(400, status);
        Assert.Equal(param, body!["error"]!["param"]!.GetValue<string>());
        Assert.Equal("invalid_request_error", body["error"]!["type"]!.GetValue<string>());
    }

    async Task<string> TextAsync(object request)
    {
        var (status, body) = await _server.PostAsync("/v1/completions", request);
        Assert.Equal(200, status);
        return body!["choices"]![0]!["text"]!.GetValue<string>();
    }

    static string Content(JsonNode body, int index) => body["choices"]![index]!["message"]!["content"]!.GetValue<string>();
}
