using System.Net.Http.Headers;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// A client's own request id, as vLLM takes it: the X-Request-Id header, else the body's request_id, is the response's
/// id after the API's prefix (whole and streamed; an id reused at once still serves both requests; the Responses API's
/// id is the client's whole), and with
/// --enable-request-id-headers every response carries X-Request-Id.
[Collection("server")]
public sealed class RequestIdTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    static object Chat(string? requestId = null, bool stream = false) => new Dictionary<string, object?>
    {
        ["model"] = RunningServer.Model, ["messages"] = new[] { new { role = "user", content = "Hello!" } }, ["max_tokens"] = 2,
        ["request_id"] = requestId, ["stream"] = stream,
    };

    async Task<(int Status, string? Id, string Body)> PostAsync(string path, object body, string? header = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = RunningServer.Json(body) };
        if (header is not null) request.Headers.TryAddWithoutValidation("X-Request-Id", header);
        using var response = await _server.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var id = (int)response.StatusCode == 200 && !text.StartsWith("data:", StringComparison.Ordinal)
            ? System.Text.Json.Nodes.JsonNode.Parse(text)!["id"]!.GetValue<string>()
            : text.Split('\n').FirstOrDefault(l => l.StartsWith("data: {", StringComparison.Ordinal)) is { } chunk
                ? System.Text.Json.Nodes.JsonNode.Parse(chunk[6..])!["id"]!.GetValue<string>() : null;
        return ((int)response.StatusCode, id, text);
    }

    [Fact]
    public async Task TheClientsIdIsTheResponsesId()
    {
        Assert.Equal("chatcmpl-body-1", (await PostAsync("/v1/chat/completions", Chat("body-1"))).Id);
        Assert.Equal("chatcmpl-header-1", (await PostAsync("/v1/chat/completions", Chat("body-1"), header: "header-1")).Id);
        Assert.Equal("chatcmpl-body-2", (await PostAsync("/v1/chat/completions", Chat("body-2"), header: "")).Id);   // an empty header gives none
        Assert.Equal("chatcmpl-streamed", (await PostAsync("/v1/chat/completions", Chat("streamed", stream: true))).Id);
        Assert.Equal("cmpl-mine", (await PostAsync("/v1/completions",
            new { model = RunningServer.Model, prompt = new[] { "a", "b" }, max_tokens = 2, request_id = "mine" })).Id);
        Assert.StartsWith("chatcmpl-", (await PostAsync("/v1/chat/completions", Chat())).Id);
        // the same id twice at once: two requests, both served
        var both = await Task.WhenAll(PostAsync("/v1/chat/completions", Chat("twice")), PostAsync("/v1/chat/completions", Chat("twice")));
        Assert.All(both, answer => Assert.Equal((200, "chatcmpl-twice"), (answer.Status, answer.Id)));
    }

    /// vLLM's Responses API takes request_id as the response's id whole (X-Request-Id over it), found again with GET;
    /// an id that names a stored response is refused, naming where it came from.
    [Fact]
    public async Task TheResponsesApiTakesTheClientsIdWhole()
    {
        object Body(string? id) => new Dictionary<string, object?>
        {
            ["model"] = RunningServer.Model, ["input"] = "Hello!", ["max_output_tokens"] = 2, ["request_id"] = id,
        };
        Assert.Equal((200, "mine-resp-1"), (await PostAsync("/v1/responses", Body("mine-resp-1"))) is var (status, id, _) ? (status, id) : default);
        using (var stored = await _server.Http.GetAsync("/v1/responses/mine-resp-1"))
            Assert.Equal(200, (int)stored.StatusCode);
        var (again, _, refusal) = await PostAsync("/v1/responses", Body("mine-resp-1"));
        Assert.Equal(400, again);
        Assert.Contains("A stored response has the id mine-resp-1;", refusal);
        Assert.Contains("\"param\":\"request_id\"", refusal);
        Assert.Equal("mine-resp-2", (await PostAsync("/v1/responses", Body("ignored"), header: "mine-resp-2")).Id);
        Assert.Contains("\"param\":\"X-Request-Id\"", (await PostAsync("/v1/responses", Body(null), header: "mine-resp-2")).Body);
        Assert.StartsWith("resp_", (await PostAsync("/v1/responses", Body(null))).Id);
    }

    [Theory]
    [InlineData("line\nbreak", "request_id must not contain control characters.")]
    [InlineData(null, "request_id must be at most 128 characters (got 129).")]
    public async Task AnIdThatCannotBeLoggedIsA400(string? id, string message)
    {
        var (status, _, body) = await PostAsync("/v1/chat/completions", Chat(id ?? new string('x', 129)));
        Assert.Equal(400, status);
        Assert.Contains(message, body);
        Assert.Contains("\"param\":\"request_id\"", body);
    }

    [Fact]
    public async Task WithRequestIdHeadersEveryResponseCarriesOne()
    {
        await using var server = await RunningServer.StartAsync(["--enable-request-id-headers"]);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/health");
        request.Headers.Add("X-Request-Id", "trace-7");
        using var echoed = await server.Http.SendAsync(request);
        Assert.Equal(["trace-7"], echoed.Headers.GetValues("X-Request-Id"));
        using var fresh = await server.Http.GetAsync("/v1/models");
        Assert.Matches("^[0-9a-f]{32}$", fresh.Headers.GetValues("X-Request-Id").Single());
        // an error answer carries it too, and names the header when the header's id is what is wrong
        using var refused = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = RunningServer.Json(Chat()) };
        refused.Headers.Add("X-Request-Id", new string('y', 129));
        using var error = await server.Http.SendAsync(refused);
        Assert.Equal(400, (int)error.StatusCode);
        Assert.Equal([new string('y', 129)], error.Headers.GetValues("X-Request-Id"));
        var body = await error.Content.ReadAsStringAsync();
        Assert.Contains("X-Request-Id must be at most 128 characters (got 129).", body);
        Assert.Contains("\"param\":\"X-Request-Id\"", body);
        using var without = await _server.Http.GetAsync("/v1/models");
        Assert.False(without.Headers.Contains("X-Request-Id"));
    }
}
