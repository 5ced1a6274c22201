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

    [Fact]
    public async Task AFaultMidResponseStreamBecomesAnErrorEventThenResponseFailed()
    {
        await using var server = await RunningServer.StartAsync(
            engineFactory: (options, logs) => new FaultingEngine(DefaultEngine.Create(options, logs)));
        var (response, events) = await server.StreamAsync("/v1/responses", new
        {
            model = RunningServer.Model, input = "Hello!", max_output_tokens = 50, ignore_eos = true, stream = true,
        });
        using (response)
        using (events)
        {
            var all = await events.ReadAllAsync();
            Assert.Equal("response.created", all[0]["type"]!.GetValue<string>());
            var (error, failed) = (all[^2], all[^1]);
            Assert.Equal("error", error["type"]!.GetValue<string>());
            Assert.Equal("injected fault after two events", error["message"]!.GetValue<string>());
            Assert.Equal("response.failed", failed["type"]!.GetValue<string>());
            Assert.Equal("failed", failed["response"]!["status"]!.GetValue<string>());
            Assert.Equal("request_failed", failed["response"]!["error"]!["code"]!.GetValue<string>());
            Assert.Equal(Enumerable.Range(0, all.Count), all.Select(e => e["sequence_number"]!.GetValue<int>()));
            // a failed response is not stored
            var id = failed["response"]!["id"]!.GetValue<string>();
            using var get = await server.Http.GetAsync($"/v1/responses/{id}");
            Assert.Equal(404, (int)get.StatusCode);
        }
        await server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.KVUsage == 0);
    }
}
