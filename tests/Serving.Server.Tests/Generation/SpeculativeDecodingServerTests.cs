using System.Text;
using OpenAI.Chat;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Generation;

/// --speculative-config through the real server: the OpenAI SDK's chats (whole and streamed) and gRPC's Generate
/// answer as a server without it does, and the drafts show in /v1/engine/stats, /metrics and the stats log line.
public sealed class SpeculativeDecodingServerTests
{
    const string Config = """{"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3, "prompt_lookup_min": 1}""";
    const int SpecDecodingEvent = 32;

    static readonly FixtureReference Reference = Fixtures.Reference("llama-gqa");

    /// A fixture prompt, what greedy decoding made of it, and the prompt again: text the model goes on repeating.
    static int[] Repeating => [.. Reference.Prompts[0].InputIds, .. Reference.Prompts[0].Greedy16, .. Reference.Prompts[0].InputIds];

    [Fact]
    public async Task AnswersAsWithoutDraftsOverHttpAndGrpcAndReportsThem()
    {
        await using var plain = await RunningServer.StartAsync();
        await using var speculating = await RunningServer.StartAsync(["--speculative-config", Config, "--log-stats-interval", "0.2"]);
        var log = LogCapture.AttachTo(speculating);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 48 };
        ChatMessage[] chat = [new UserChatMessage("one two three one two three one two three one two")];

        foreach (var server in new[] { plain, speculating })
        {
            var whole = await server.OpenAI().GetChatClient(RunningServer.Model).CompleteChatAsync(chat, options);
            var streamed = new StringBuilder();
            await foreach (var update in server.OpenAI().GetChatClient(RunningServer.Model).CompleteChatStreamingAsync(chat, options))
                foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
            Assert.Equal(whole.Value.Content[0].Text, streamed.ToString());
        }
        var expected = await plain.OpenAI().GetChatClient(RunningServer.Model).CompleteChatAsync(chat, options);
        var actual = await speculating.OpenAI().GetChatClient(RunningServer.Model).CompleteChatAsync(chat, options);
        Assert.Equal(expected.Value.Content[0].Text, actual.Value.Content[0].Text);
        Assert.Equal(expected.Value.Usage.OutputTokenCount, actual.Value.Usage.OutputTokenCount);

        var grpcExpected = await GenerateResult.ReadAsync(plain.Grpc(), GenerateResult.Greedy(48, Repeating));
        var grpcActual = await GenerateResult.ReadAsync(speculating.Grpc(), GenerateResult.Greedy(48, Repeating));
        Assert.Equal(grpcExpected.TokenIds(), grpcActual.TokenIds());
        Assert.Equal(grpcExpected.Text(), grpcActual.Text());

        var stats = await speculating.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0);
        Assert.True(stats.Speculation.NumAcceptedTokens > 0, "no draft was kept");
        Assert.Equal(0, plain.Engine.GetStats().Speculation.NumDrafts);

        var (status, body) = await GetJsonAsync(speculating, "/v1/engine/stats");
        Assert.Equal(200, status);
        Assert.Equal(stats.Speculation.NumAcceptedTokens, body!["spec_decode_accepted_tokens"]!.GetValue<long>());
        Assert.True(body["spec_decode_draft_tokens"]!.GetValue<long>() >= stats.Speculation.NumAcceptedTokens);
        var metrics = await speculating.Http.GetStringAsync("/metrics");
        Assert.Matches(@"serving_engine_spec_decode_accepted_tokens(_total)?(\{[^}]*\})? [1-9]", metrics);
        Assert.Matches(@"serving_engine_spec_decode_accepted_tokens_per_position(_total)?\{[^}]*position=""0""[^}]*\} [1-9]", metrics);

        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (log.Of(SpecDecodingEvent).Count == 0 && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.Matches(@"^SpecDecoding metrics: Mean acceptance length: \d+\.\d\d, Accepted: \d+ tokens, Drafted: \d+ tokens, Per-position acceptance rate: [\d., ]+, Avg Draft acceptance rate: \d+\.\d%$",
            Assert.Single(log.Of(SpecDecodingEvent).Take(1)));
    }

    static async Task<(int Status, System.Text.Json.Nodes.JsonNode? Body)> GetJsonAsync(RunningServer server, string path)
    {
        using var response = await server.Http.GetAsync(path);
        return ((int)response.StatusCode, System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync()));
    }

    [Fact]
    public void TheFlagBindsAndABadConfigIsAStartupErrorNamingWhy()
    {
        var options = Options.ServerCommandLineTests.Bind(Serving.Server.Options.ServerCommandLine.ToConfiguration(["--speculative-config", Config]));
        Assert.Equal(new Serving.Engine.Speculative.SpeculativeConfig { NumSpeculativeTokens = 4, PromptLookupMin = 1, PromptLookupMax = 3 },
            options.ToEngineOptions().SpeculativeConfig);
        Assert.Null(new Serving.Server.Options.ServerOptions().ToEngineOptions().SpeculativeConfig);
        var suffix = Options.ServerCommandLineTests.Bind(Serving.Server.Options.ServerCommandLine.ToConfiguration(
            ["--speculative-config", """{"method": "suffix", "suffix_decoding_max_cached_requests": 100}"""]));
        Assert.Equal(new Serving.Engine.Speculative.SpeculativeConfig
        {
            Method = Serving.Engine.Speculative.SpeculativeMethod.Suffix, NumSpeculativeTokens = 24, SuffixMaxCachedRequests = 100,
        }, suffix.ToEngineOptions().SpeculativeConfig);
        var bad = Options.ServerCommandLineTests.Bind(Serving.Server.Options.ServerCommandLine.ToConfiguration(
            ["--speculative-config", """{"method": "eagle", "model": "yuhuili/EAGLE-LLaMA3-Instruct-8B", "num_speculative_tokens": 5}"""]));
        Assert.Contains(bad.Validate(), error => error.StartsWith("speculative-config: method \"eagle\" is not supported", StringComparison.Ordinal));
    }
}
