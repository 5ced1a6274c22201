using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Health;

/// On shutdown the server stops admitting (503), lets running requests finish within --shutdown-timeout,
/// and aborts what is left with finish_reason set; streams always end with [DONE].
public sealed class ShutdownTests
{
    static object Stream(int n) => new
    {
        model = RunningServer.Model, prompt = "Hello world", n, max_tokens = 200, ignore_eos = true, temperature = 1, seed = 1,
        stream = true,
    };

    [Fact]
    public async Task DrainingRefusesNewWorkAndLetsRunningRequestsFinish()
    {
        await using var server = await RunningServer.StartAsync(["--shutdown-timeout", "60"]);
        var log = LogCapture.AttachTo(server);
        var streams = new List<(HttpResponseMessage Response, SseReader Events)>();
        for (var i = 0; i < 4; i++)
        {
            var stream = await server.StreamAsync("/v1/completions", Stream(8));
            Assert.NotNull(await stream.Events.NextAsync());
            streams.Add(stream);
        }
        var stopping = server.App.StopAsync();

        using var probe = server.NewClient(RunningServer.ApiKey);
        using var ready = await probe.GetAsync("/health/ready");
        Assert.Equal(503, (int)ready.StatusCode);
        Assert.Equal("draining", await ready.Content.ReadAsStringAsync());
        var (status, _) = await server.PostAsync("/v1/completions", new { model = RunningServer.Model, prompt = "x", max_tokens = 1 });
        Assert.Equal(503, status);
        // A refusal while draining is the state the client is told about, not a server fault: no error, no stack trace.
        Assert.DoesNotContain(log.Entries, e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Error || e.Exception is not null);
        Assert.Contains(log.Entries, e => e.Text.Contains("rejected with 503", StringComparison.Ordinal));

        foreach (var (response, events) in streams)
        {
            var chunks = await events.ReadAllAsync();
            Assert.True(events.SawDone);
            var reasons = chunks.SelectMany(c => c["choices"]!.AsArray()).Select(c => c!["finish_reason"]?.GetValue<string>())
                .Where(r => r is not null).ToList();
            Assert.Equal(Enumerable.Repeat("length", 8), reasons);
            response.Dispose();
        }
        await stopping;
    }

    [Fact]
    public async Task RequestsStillRunningAtTheTimeoutAreAbortedWithAFinishReason()
    {
        await using var server = await RunningServer.StartAsync(["--shutdown-timeout", "0"]);
        var (response, events) = await server.StreamAsync("/v1/completions", Stream(1));
        Assert.NotNull(await events.NextAsync());
        var stopping = server.App.StopAsync();
        var chunks = await events.ReadAllAsync();
        Assert.True(events.SawDone);
        Assert.Equal("abort", chunks[^1]["choices"]![0]!["finish_reason"]!.GetValue<string>());
        response.Dispose();
        await stopping;
    }
}
