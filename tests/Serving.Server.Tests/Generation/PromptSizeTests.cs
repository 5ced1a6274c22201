using System.Diagnostics;
using System.Text;
using Grpc.Net.Client;
using Serving.Grpc.V1;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Generation;

/// A text that cannot fit the context (longer than max_model_len times the longest token) is refused before it
/// is tokenized, on every path that tokenizes, and a burst of such requests leaves the server's memory where it
/// was. The attack: 8 concurrent 7.8 MB prompts, twice, against the server process (before: 2.5-5.5 s of CPU
/// each, RSS from 2.5 to 5.6 GB and then 10 GB, never given back).
public sealed class PromptSizeTests
{
    const int Concurrent = 8;

    static readonly string HugeText = BuildText(7_800_000);

    [Fact]
    public async Task EightHugePromptsAtOnceAreRefusedQuicklyAndMemoryReturnsToRest()
    {
        await using var server = ServerProcess.Start(["--model", Fixtures.Dir("llama-gqa")]);
        await server.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));
        using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        for (var i = 0; i < 3; i++) await SmallAsync(http);
        await Task.Delay(1000);
        var rest = server.RssBytes;

        var body = System.Text.Json.JsonSerializer.Serialize(new { prompt = HugeText, max_tokens = 4 });
        for (var round = 0; round < 2; round++)
        {
            var clock = Stopwatch.StartNew();
            var huge = Enumerable.Range(0, Concurrent).Select(_ => PostAsync(http, "/v1/completions", body)).ToList();
            var unrelated = Stopwatch.StartNew();
            await SmallAsync(http);
            var unrelatedLatency = unrelated.Elapsed;
            foreach (var (status, text) in await Task.WhenAll(huge))
            {
                Assert.Equal(400, status);
                Assert.Contains("cannot fit", text);
                Assert.Contains("\"param\":\"prompt\"", text);
            }
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"round {round} took {clock.Elapsed}");
            Assert.True(unrelatedLatency < TimeSpan.FromSeconds(5), $"an unrelated request took {unrelatedLatency}");
        }
        var afterBurst = server.RssBytes;
        Assert.True(afterBurst < rest + (512L << 20), $"RSS {rest >> 20} MiB at rest, {afterBurst >> 20} MiB after the bursts");

        // Idle, the server gives the burst's memory back (IdleMemoryTrimmer).
        var deadline = Stopwatch.StartNew();
        while (server.RssBytes > rest + (96L << 20) && deadline.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(500);
        Assert.True(server.RssBytes <= rest + (96L << 20), $"RSS {rest >> 20} MiB at rest, {server.RssBytes >> 20} MiB 30 s after the bursts");
    }

    [Fact]
    public async Task EveryTokenizingPathRefusesATextThatCannotFit()
    {
        await using var server = await RunningServer.StartAsync(["--max-request-body-bytes", $"{4 << 20}"]);
        var text = HugeText[..2_000_000];
        var messages = new[] { new { role = "user", content = text } };
        foreach (var (path, body, param) in new (string, object, string)[]
        {
            ("/v1/completions", new { model = RunningServer.Model, prompt = text }, "prompt"),
            ("/v1/completions", new { model = RunningServer.Model, prompt = new[] { "ok", text } }, "prompt"),
            ("/v1/chat/completions", new { model = RunningServer.Model, messages }, "messages[0].content"),
            ("/tokenize", new { model = RunningServer.Model, prompt = text }, "prompt"),
            ("/tokenize", new { model = RunningServer.Model, messages }, "messages[0].content"),
        })
        {
            var (status, error) = await server.PostAsync(path, body);
            Assert.Equal(400, status);
            Assert.Equal(param, error!["error"]!["param"]!.GetValue<string>());
            Assert.Contains("cannot fit", error["error"]!["message"]!.GetValue<string>());
        }
        var grpc = server.Grpc();
        foreach (var call in new Func<Task>[]
        {
            () => grpc.TokenizeAsync(new TokenizeRequest { Text = text }).ResponseAsync,
            () => GenerateResult.ReadAsync(grpc, new GenerateRequest { Text = text }),
            () => GenerateResult.ReadAsync(grpc, new GenerateRequest { Chat = new ChatInput { Messages = { new ChatMessage { Role = "user", Content = text } } } }),
        })
        {
            var error = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(call);
            Assert.Equal(global::Grpc.Core.StatusCode.InvalidArgument, error.StatusCode);
            Assert.Contains("cannot fit", error.Status.Detail);
        }
    }

    static async Task SmallAsync(HttpClient http)
    {
        var (status, _) = await PostAsync(http, "/v1/completions", """{"prompt": "Hello", "max_tokens": 2}""");
        Assert.Equal(200, status);
    }

    static async Task<(int Status, string Text)> PostAsync(HttpClient http, string path, string json)
    {
        using var response = await http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// Words of 2 to 9 letters from a fixed vocabulary, as the attack sent them.
    static string BuildText(int length)
    {
        var random = new Random(1);
        var words = Enumerable.Range(0, 50_000)
            .Select(_ => new string([.. Enumerable.Range(0, random.Next(2, 10)).Select(_ => (char)('a' + random.Next(26)))])).ToArray();
        var text = new StringBuilder(length + 16);
        while (text.Length < length) text.Append(words[random.Next(words.Length)]).Append(' ');
        return text.ToString(0, length);
    }
}
