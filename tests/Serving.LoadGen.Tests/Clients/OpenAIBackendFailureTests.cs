using System.Net;
using System.Text;
using Serving.LoadGen.Clients;
using Serving.LoadGen.Datasets;
using Serving.LoadGen.Metrics;
using Serving.LoadGen.Runner;

namespace Serving.LoadGen.Tests.Clients;

/// Failures a healthy server will not produce on demand (a full queue, a stream that dies), served by a
/// scripted HTTP listener on loopback, go through the real client and runner and are counted and summarised.
public sealed class OpenAIBackendFailureTests
{
    [Fact]
    public async Task FailedRequestsAreCountedAndTheirErrorsSummarised()
    {
        using var listener = StartListener(out var baseUrl);
        var serving = ServeAsync(listener, numRequests: 4);
        await using var backend = new OpenAIBackend(baseUrl, apiKey: null, chat: false);
        var requests = Enumerable.Range(0, 4).Select(i => new BenchRequest(i, BenchPrompt.Ids([1, 2, 3]), 3, 2)).ToArray();
        var run = await BenchmarkRunner.RunAsync(requests, [0, 0.01, 0.02, 0.03], maxConcurrency: 1, backend,
            new GenerationSettings("m", IgnoreEos: true), null, CancellationToken.None);
        await serving;

        var metrics = MetricsCalculator.Compute(run, [99], null);
        Assert.Equal((1, 3), (metrics.Completed, metrics.Failed));
        Assert.Equal(2, metrics.TotalOutputTokens);
        Assert.Equal(["HTTP 429: queue full", "stream ended without [DONE]", "stream error: engine failed"],
            metrics.Errors.Select(e => e.Message).Order());
    }

    static HttpListener StartListener(out Uri baseUrl)
    {
        for (var attempt = 0; ; attempt++)
        {
            var port = Random.Shared.Next(20000, 60000);
            var listener = new HttpListener();
            listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            try
            {
                listener.Start();
                baseUrl = new Uri($"http://127.0.0.1:{port}/");
                return listener;
            }
            catch (HttpListenerException) when (attempt < 20)
            {
                listener.Close();
            }
        }
    }

    /// Request 0 succeeds, 1 gets 429, 2 gets an error event mid-stream, 3 is cut before [DONE].
    static async Task ServeAsync(HttpListener listener, int numRequests)
    {
        for (var i = 0; i < numRequests; i++)
        {
            var context = await listener.GetContextAsync();
            var response = context.Response;
            if (i == 1)
            {
                response.StatusCode = 429;
                await Write(response, """{"error":{"message":"queue full","type":"rate_limit_error","param":null,"code":429}}""");
                response.Close();
                continue;
            }
            response.ContentType = "text/event-stream";
            await Write(response, """data: {"choices":[{"index":0,"text":"a","token_ids":[7]}]}""" + "\n\n");
            var rest = i switch
            {
                0 => "data: {\"choices\":[{\"index\":0,\"text\":\"b\",\"token_ids\":[8]}]}\n\ndata: [DONE]\n\n",
                2 => "data: {\"error\":{\"message\":\"engine failed\"}}\n\ndata: [DONE]\n\n",
                _ => "",
            };
            await Write(response, rest);
            response.Close();
        }
    }

    static async Task Write(HttpListenerResponse response, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        await response.OutputStream.WriteAsync(bytes);
        await response.OutputStream.FlushAsync();
    }
}
