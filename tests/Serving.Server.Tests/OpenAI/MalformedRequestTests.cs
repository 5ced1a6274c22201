using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// Bad input is the client's error, never the server's: each endpoint's request, rich in fields (tools, messages of
/// every role, constraints, stream options), with every field in turn replaced by a value of the wrong type or range
/// (null, booleans, negative, huge and fractional numbers, empty and control-character strings, empty and odd arrays
/// and objects), streamed and not, is answered below 500, as are bodies that are not JSON objects; the engine serves a
/// plain request after all of them. (Fuzzing the same way, ~17,000 requests, found a Responses metadata value of null
/// answered with a 500.)
public sealed class MalformedRequestTests : IAsyncLifetime
{
    RunningServer _server = null!;
    LogCapture _log = null!;

    public async Task InitializeAsync()
    {
        _server = await RunningServer.StartAsync(["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]);
        _log = LogCapture.AttachTo(_server);
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    static readonly Func<JsonNode?>[] OddValues =
    [
        () => null, () => true, () => -1, () => 0, () => long.MaxValue, () => 1e308, () => 1.5, () => "", () => "x", () => "\u0000",
        () => new JsonArray(), () => new JsonArray((JsonNode?)null), () => new JsonArray(1, "a"), () => new JsonObject(),
        () => new JsonObject { ["a"] = 1 }, () => new JsonObject { ["type"] = null },
    ];

    public static TheoryData<string, string> Requests() => new()
    {
        { "/v1/chat/completions", """
            {"model": "tiny", "max_tokens": 2, "messages": [
              {"role": "system", "content": "sys"},
              {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
              {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
              {"role": "tool", "tool_call_id": "c1", "content": "ok"}],
             "tools": [{"type": "function", "function": {"name": "f", "description": "d",
               "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}],
             "tool_choice": "auto", "logit_bias": {"5": 1}, "stop": ["x"], "n": 2, "logprobs": true, "top_logprobs": 2,
             "stream_options": {"include_usage": true}}
            """ },
        { "/v1/chat/completions", """
            {"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}],
             "response_format": {"type": "json_schema", "json_schema": {"name": "n",
               "schema": {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string", "pattern": "[a-z]+"}}}}}}}
            """ },
        { "/v1/completions", """
            {"model": "tiny", "prompt": [[1, 2, 3], [4, 5]], "max_tokens": 2, "n": 2, "logprobs": 2, "echo": true,
             "structured_outputs": {"choice": ["a", "b"]}, "stop": ["x"], "stream_options": {"include_usage": true}}
            """ },
        { "/v1/responses", """
            {"model": "tiny", "max_output_tokens": 2, "input": [
              {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
              {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
              {"type": "function_call_output", "call_id": "c1", "output": "r"}],
             "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}], "text": {"format": {"type": "json_object"}},
             "reasoning": {"effort": "low"}, "metadata": {"k": "v"}}
            """ },
        { "/tokenize", """{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "tools": [{"type": "function", "function": {"name": "f"}}]}""" },
        { "/detokenize", """{"model": "tiny", "tokens": [1, 2, 3], "skip_special_tokens": false}""" },
        { "/v1/embeddings", """{"model": "tiny", "input": ["Hello", "there"], "encoding_format": "float"}""" },
        { "/v1/score", """{"model": "tiny", "text_1": "a", "text_2": ["b", "c"]}""" },
    };

    [Theory, MemberData(nameof(Requests))]
    public async Task EveryFieldOfTheWrongTypeOrRangeIsAClientError(string path, string request)
    {
        var valid = JsonNode.Parse(request)!;
        var bodies = new List<string>();
        foreach (var field in Paths(valid, []))
            foreach (var odd in OddValues)
                foreach (var stream in new[] { false, true })
                {
                    var body = valid.DeepClone();
                    Set(body, field, odd());
                    if (stream && path != "/tokenize" && path != "/detokenize") body["stream"] = true;
                    else if (field[0] is not "stream_options") body.AsObject().Remove("stream_options");   // only with stream: true
                    bodies.Add(body.ToJsonString());
                }
        bodies.AddRange(["", "{", "null", "[]", "123", """{"model": NaN}""", "\"text\"", string.Concat(Enumerable.Repeat("[", 200))]);

        var errors = new System.Collections.Concurrent.ConcurrentBag<string>();
        await Parallel.ForEachAsync(bodies, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (body, cancellationToken) =>
        {
            using var response = await _server.Http.PostAsync(path, RunningServer.Json(body), cancellationToken);
            await response.Content.ReadAsStringAsync(cancellationToken);   // a stream to its end
            if ((int)response.StatusCode >= 500) errors.Add($"{(int)response.StatusCode}: {body}");
        });
        // a failure names the bodies and what the server logged of them
        var failures = _log.Entries.Where(e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Error).Select(e => $"{e.Text}: {e.Exception}");
        Assert.True(errors.IsEmpty, string.Join("\n", errors.Concat(failures)));
        var (status, _) = await _server.PostAsync("/v1/completions", new { model = RunningServer.Model, prompt = "Hello", max_tokens = 2 });
        Assert.Equal(200, status);
    }

    /// Every member and element of the request, by its keys and indices (the root itself left out).
    static IEnumerable<object[]> Paths(JsonNode node, object[] prefix)
    {
        var children = node switch
        {
            JsonObject o => o.Select(p => ((object)p.Key, p.Value)),
            JsonArray a => a.Select((v, i) => ((object)i, v)),
            _ => [],
        };
        foreach (var (key, child) in children)
        {
            object[] path = [.. prefix, key];
            yield return path;
            if (child is not null)
                foreach (var deeper in Paths(child, path)) yield return deeper;
        }
    }

    static void Set(JsonNode root, object[] path, JsonNode? value)
    {
        var parent = path[..^1].Aggregate(root, (node, key) => key is int i ? node[i]! : node[(string)key]!);
        if (path[^1] is int index) parent[index] = value;
        else parent[(string)path[^1]] = value;
    }
}
