using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// stop_reason (vLLM's field) names a stop token id only when the sequence stopped on it: a sequence that ends
/// on length reports none, even when its last token is one of the stop_token_ids.
[Collection("server")]
public sealed class StopReasonTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    [Fact]
    public async Task StopReasonIsATokenIdOnlyForSequencesThatStoppedOnIt()
    {
        var prompt = Fixtures.Reference("llama-gqa").Prompts[0];
        var greedy = prompt.Greedy16;
        var stopped = 0;
        var lengthWithStopTokenLast = 0;
        foreach (var position in new[] { 0, 2, 5 })
            foreach (var maxTokens in new[] { position, position + 1, position + 3 })
                foreach (var minTokens in new[] { 0, Math.Max(0, maxTokens - 1), maxTokens })
                {
                    if (maxTokens < 1) continue;
                    var (status, body) = await _server.PostAsync("/v1/completions", new
                    {
                        model = RunningServer.Model, prompt = prompt.InputIds, max_tokens = maxTokens, min_tokens = minTokens,
                        temperature = 0, ignore_eos = true, stop_token_ids = new[] { greedy[position] }, return_token_ids = true,
                    });
                    Assert.Equal(200, status);
                    var choice = body!["choices"]![0]!;
                    var tokens = choice["token_ids"]!.AsArray().Select(t => t!.GetValue<int>()).ToArray();
                    var reason = choice["finish_reason"]!.GetValue<string>();
                    var stopReason = choice["stop_reason"];
                    if (reason == "length")
                    {
                        Assert.Null(stopReason);
                        if (tokens[^1] == greedy[position]) lengthWithStopTokenLast++;
                    }
                    else
                    {
                        Assert.Equal("stop", reason);
                        Assert.Equal(tokens[^1], stopReason!.GetValue<int>());
                        Assert.True(tokens.Length > minTokens || tokens.Length == maxTokens, $"stopped at {tokens.Length} before min_tokens {minTokens}");
                        stopped++;
                    }
                }
        Assert.True(stopped > 0, "no request stopped on its stop token");
    }
}
