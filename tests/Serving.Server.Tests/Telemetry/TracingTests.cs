using System.Collections.Concurrent;
using System.Diagnostics;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Telemetry;

/// Each engine request is a span carrying its queue, prefill and decode times and its usage.
[Collection("server")]
public sealed class TracingTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    [Fact]
    public async Task ARequestIsASpanWithQueuePrefillAndDecodeTimes()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Serving.Server",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        var (status, body) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello world", max_tokens = 6, ignore_eos = true, temperature = 0,
        });
        Assert.Equal(200, status);

        var id = body!["id"]!.GetValue<string>();
        var span = Assert.Single(spans, s => (string?)s.GetTagItem("gen_ai.request.id") == id);
        Assert.Equal($"text_completion {RunningServer.Model}", span.DisplayName);
        Assert.Equal(8, span.GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Equal(6, span.GetTagItem("gen_ai.usage.output_tokens"));
        Assert.Equal(new[] { "length" }, span.GetTagItem("gen_ai.response.finish_reasons"));
        var queue = (double)span.GetTagItem("serving.queue_time_s")!;
        var prefill = (double)span.GetTagItem("serving.prefill_time_s")!;
        var decode = (double)span.GetTagItem("serving.decode_time_s")!;
        Assert.True(queue >= 0 && prefill > 0 && decode > 0, $"queue {queue}, prefill {prefill}, decode {decode}");
        Assert.True(queue + prefill + decode <= span.Duration.TotalSeconds + 0.25);
    }
}
