using Serving.Server.Engine;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Streaming;

/// A failure after the stream began ends it with an error event and [DONE], never a silent close.
public sealed class StreamFailureTests
{
    [Fact]
    public async Task AFaultMidStreamBecomesAnErrorEventThenDone()
    {
        await using var server = await RunningServer.StartAsync(
            engineFactory: (options, logs) => new FaultingEngine(DefaultEngine.Create(options, logs)));
        var (response, events) = await server.StreamAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = new[] { new { role = "user", content = "Hello!" } },
            max_tokens = 50, ignore_eos = true, stream = true,
        });
        using (response)
        using (events)
        {
            Assert.Equal(200, (int)response.StatusCode);
            var chunks = await events.ReadAllAsync();
            Assert.True(events.SawDone);
            Assert.Equal("chat.completion.chunk", chunks[0]["object"]!.GetValue<string>());
            var error = chunks[^1]["error"]!;
            Assert.Equal("injected fault after two events", error["message"]!.GetValue<string>());
            Assert.Equal("server_error", error["type"]!.GetValue<string>());
        }

        // Without streaming the same fault is a 500 in the error shape (it is the server's fault, not the client's).
        var (status, body) = await server.PostAsync("/v1/completions", new { model = RunningServer.Model, prompt = "Hi", max_tokens = 50, ignore_eos = true });
        Assert.Equal(500, status);
        Assert.Equal("request_failed", body!["error"]!["code"]!.GetValue<string>());
        await server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.KVUsage == 0);
    }
}
