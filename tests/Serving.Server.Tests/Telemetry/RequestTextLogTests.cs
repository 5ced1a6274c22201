using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Telemetry;

/// --enable-log-requests writes one line per request with its prompt and output, whole or streamed, over HTTP
/// and gRPC; without the flag no request text reaches the logs.
public sealed class RequestTextLogTests
{
    const int RequestTextEventId = 14;
    const int Requests = 5;

    [Fact]
    public async Task WithTheFlagEveryRequestLogsItsPromptAndOutputWholeOrStreamed()
    {
        await using var server = await RunningServer.StartAsync(["--enable-log-requests"]);
        var log = LogCapture.AttachTo(server);
        await SendOneOfEachAsync(server);
        var lines = await log.WaitForAsync(RequestTextEventId, Requests);
        Assert.Equal(2, lines.Count(line => line.Contains("prompt=Hello completions", StringComparison.Ordinal)));
        Assert.Equal(2, lines.Count(line => line.Contains("Hello chat", StringComparison.Ordinal)));
        Assert.Single(lines, line => line.Contains("prompt=Hello grpc", StringComparison.Ordinal));
        Assert.All(lines, line => Assert.Matches("output=.+", line));
    }

    /// Logged text is escaped (as vLLM logs prompts with %r): a prompt cannot forge log lines or send terminal escapes.
    [Fact]
    public async Task LoggedTextHasItsControlCharactersEscaped()
    {
        await using var server = await RunningServer.StartAsync(["--enable-log-requests"]);
        var log = LogCapture.AttachTo(server);
        var body = new { model = RunningServer.Model, prompt = "Hi\r\ncrit: forged\u001b[2J", max_tokens = 2 };
        Assert.Equal(200, (await server.PostAsync("/v1/completions", body)).Status);
        var line = Assert.Single(await log.WaitForAsync(RequestTextEventId, 1));
        Assert.Contains("prompt=Hi\\r\\ncrit: forged\\x1b[2J", line);
        Assert.DoesNotContain(line, char.IsControl);
    }

    [Fact]
    public async Task MaxLogLenCutsTheLoggedText()
    {
        await using var server = await RunningServer.StartAsync(["--enable-log-requests", "--max-log-len", "5"]);
        var log = LogCapture.AttachTo(server);
        var body = new { model = RunningServer.Model, prompt = "Hello completions", max_tokens = 8, ignore_eos = true };
        Assert.Equal(200, (await server.PostAsync("/v1/completions", body)).Status);
        var line = Assert.Single(await log.WaitForAsync(RequestTextEventId, 1));
        Assert.Contains("prompt=Hello output=", line);
        // at most 5 characters of output, some perhaps written as escapes (\n)
        var output = line[(line.IndexOf("output=", StringComparison.Ordinal) + "output=".Length)..];
        Assert.InRange(System.Text.RegularExpressions.Regex.Replace(output, @"\\(x[0-9a-f]{2}|[nrt])", "_").Length, 1, 5);
    }

    [Fact]
    public async Task WithoutTheFlagNoRequestTextIsLogged()
    {
        await using var server = await RunningServer.StartAsync();
        var log = LogCapture.AttachTo(server);
        await SendOneOfEachAsync(server);
        await server.WaitForStatsAsync(stats => stats.RunningRequests == 0);
        Assert.DoesNotContain(log.Lines, line => line.Contains("Hello", StringComparison.Ordinal));
        Assert.Empty(log.Of(RequestTextEventId));
    }

    /// Completions and chat, each whole and streamed, and one gRPC Generate.
    static async Task SendOneOfEachAsync(RunningServer server)
    {
        foreach (var stream in new[] { false, true })
        {
            var completion = new { model = RunningServer.Model, prompt = "Hello completions", max_tokens = 4, stream };
            var chat = new { model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hello chat" } }, max_tokens = 4, stream };
            foreach (var (path, body) in new (string, object)[] { ("/v1/completions", completion), ("/v1/chat/completions", chat) })
            {
                if (!stream)
                {
                    Assert.Equal(200, (await server.PostAsync(path, body)).Status);
                    continue;
                }
                var (response, events) = await server.StreamAsync(path, body);
                using (response)
                using (events)
                {
                    await events.ReadAllAsync();
                    Assert.True(events.SawDone);
                }
            }
        }
        await GenerateResult.ReadAsync(server.Grpc(), GenerateResult.Greedy(4, text: "Hello grpc"));
    }
}
