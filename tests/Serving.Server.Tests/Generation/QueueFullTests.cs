using System.Text.Json;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Generation;

/// Past --max-num-queued-reqs waiting requests, new ones get 429 with Retry-After.
public sealed class QueueFullTests
{
    [Fact]
    public async Task AFullQueueAnswers429WithRetryAfter()
    {
        await using var server = await RunningServer.StartAsync(["--max-num-seqs", "1", "--max-num-queued-reqs", "1"]);
        var body = new { model = RunningServer.Model, prompt = "Hello world", max_tokens = 240, ignore_eos = true, stream = true };
        var sends = Enumerable.Range(0, 4).Select(_ => server.Http.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = RunningServer.Json(body) },
            HttpCompletionOption.ResponseHeadersRead)).ToList();
        var responses = await Task.WhenAll(sends);
        try
        {
            var refused = responses.Where(r => (int)r.StatusCode == 429).ToList();
            Assert.NotEmpty(refused);
            Assert.Contains(responses, r => (int)r.StatusCode == 200);
            foreach (var response in refused)
            {
                Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
                using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                Assert.Equal("queue_full", error.RootElement.GetProperty("error").GetProperty("code").GetString());
            }
        }
        finally
        {
            foreach (var response in responses) response.Dispose();
        }
        await server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0 && s.KVUsage == 0);
    }
}
