using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Errors;

/// Bad requests of every kind get their documented 4xx and OpenAI's error shape, never a 5xx, and the
/// server keeps answering afterwards.
[Collection("server")]
public sealed class ErrorMatrixTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    sealed record Case(string Name, string Path, byte[]? Body, int Status, string? Param = null, string Method = "POST",
        string? ApiKey = RunningServer.ApiKey, string ContentType = "application/json");

    const string Completions = "/v1/completions";
    const string Chat = "/v1/chat/completions";

    static byte[] Raw(string json) => Encoding.UTF8.GetBytes(json);

    /// A completions body: the given fields over a valid base request.
    static byte[] C(string fields) => Raw($$"""{"model": "tiny", "prompt": "Hello", "max_tokens": 2 {{(fields.Length > 0 ? "," : "")}} {{fields}}}""");

    static byte[] Messages(string messages, string fields = "") =>
        Raw($$"""{"model": "tiny", "messages": {{messages}}, "max_tokens": 2 {{(fields.Length > 0 ? "," : "")}} {{fields}}}""");

    static readonly string UserHi = """[{"role": "user", "content": "hi"}]""";

    static IEnumerable<Case> Cases() =>
    [
        new("malformed json", Completions, Raw("""{"model": "tiny", "prompt": """), 400),
        new("trailing garbage", Completions, Raw("""{"prompt": "a"} x"""), 400),
        new("array body", Completions, Raw("[]"), 400),
        new("string body", Completions, Raw("\"hello\""), 400),
        new("number body", Completions, Raw("42"), 400),
        new("null body", Completions, Raw("null"), 400),
        new("empty body", Completions, [], 400),
        new("invalid utf-8", Completions, [.. Raw("""{"model": "tiny", "prompt": " """), 0xFF, 0xFE, .. Raw("\"}")], 400),
        new("invalid utf-8 in typed field", Completions, [.. Raw("{\"model\": \""), 0xC3, 0x28, .. Raw("\", \"prompt\": \"a\"}")], 400),
        new("lone surrogate escape", Completions, Raw("""{"model": "tiny", "prompt": "a\ud800b"}"""), 400),
        new("lone surrogate in chat", Chat, Messages("""[{"role": "user", "content": "\udc00"}]"""), 400),
        new("lone surrogate in a message key", Chat, Messages("""[{"role": "user", "content": "hi", "\ud800": 1}]"""), 400, "messages[0]"),
        new("lone surrogate in a kwargs value", Chat, Messages(UserHi, """ "chat_template_kwargs": {"x": "a\ud800"} """), 400, "chat_template_kwargs.x"),
        new("lone surrogate in a kwargs key", Chat, Messages(UserHi, """ "chat_template_kwargs": {"\udfff": 1} """), 400, "chat_template_kwargs"),
        new("lone surrogate nested in kwargs", Chat, Messages(UserHi, """ "chat_template_kwargs": {"a": [{"b": "\ud800"}]} """), 400, "chat_template_kwargs.a[0].b"),
        new("invalid utf-8 in kwargs", Chat, [.. Messages(UserHi, "\"chat_template_kwargs\": {\"x\": \"")[..^1], 0xC3, 0x28, .. Raw("\"}}")], 400, "chat_template_kwargs.x"),
        new("kwargs not an object", Chat, Messages(UserHi, "\"chat_template_kwargs\": [1]"), 400, "chat_template_kwargs"),
        new("lone surrogate in response_format", Chat, Messages(UserHi, """ "response_format": {"\ud800": 1} """), 400, "response_format"),
        new("tokenize kwargs lone surrogate", "/tokenize", Raw("""{"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"x": "\ud800"}}"""), 400, "chat_template_kwargs.x"),
        new("untrusted request chat_template", Chat, Messages(UserHi, "\"chat_template\": \"{{ messages }}\""), 400, "chat_template"),
        new("form content type", Completions, C(""), 415, ContentType: "application/x-www-form-urlencoded"),
        new("text/plain content type", Chat, Messages(UserHi), 415, ContentType: "text/plain"),
        new("no content type", "/tokenize", Raw("""{"prompt": "a"}"""), 415, ContentType: ""),
        new("deeply nested json", Completions, Raw(new string('[', 100) + new string(']', 100)), 400),
        new("prompt missing", Completions, Raw("""{"model": "tiny"}"""), 400, "prompt"),
        new("prompt empty string", Completions, Raw("""{"prompt": ""}"""), 400, "prompt"),
        new("prompt empty list", Completions, Raw("""{"prompt": []}"""), 400, "prompt"),
        new("prompt object", Completions, Raw("""{"prompt": {"text": "a"}}"""), 400, "prompt"),
        new("prompt mixed list", Completions, Raw("""{"prompt": ["a", 1]}"""), 400, "prompt"),
        new("token id over vocab", Completions, Raw("""{"prompt": [1, 512]}"""), 400, "prompt"),
        new("negative token id", Completions, Raw("""{"prompt": [-1]}"""), 400, "prompt"),
        new("fractional token id", Completions, Raw("""{"prompt": [1.5]}"""), 400, "prompt"),
        new("empty token-id list", Completions, Raw("""{"prompt": [[1], []]}"""), 400, "prompt"),
        new("prompt too long", Completions, Raw($$"""{"prompt": [{{string.Join(",", Enumerable.Repeat(5, 300))}}]}"""), 400, "prompt"),
        new("max_tokens string", Completions, C("\"max_tokens\": \"ten\""), 400, "max_tokens"),
        new("max_tokens zero", Completions, C("\"max_tokens\": 0"), 400, "max_tokens"),
        new("max_tokens negative", Completions, C("\"max_tokens\": -5"), 400, "max_tokens"),
        new("max_tokens overflow", Completions, C("\"max_tokens\": 1000000000000"), 400, "max_tokens"),
        new("max_tokens over context", Completions, C("\"max_tokens\": 10000"), 400, "max_tokens"),
        new("temperature negative", Completions, C("\"temperature\": -1"), 400, "temperature"),
        new("temperature string", Completions, C("\"temperature\": \"hot\""), 400, "temperature"),
        new("temperature huge", Completions, C("\"temperature\": 1e39"), 400, "temperature"),
        new("top_p zero", Completions, C("\"top_p\": 0"), 400, "top_p"),
        new("top_p over one", Completions, C("\"top_p\": 2"), 400, "top_p"),
        new("top_k below -1", Completions, C("\"top_k\": -5"), 400, "top_k"),
        new("min_p over one", Completions, C("\"min_p\": 1.5"), 400, "min_p"),
        new("n zero", Completions, C("\"n\": 0"), 400, "n"),
        new("n over limit", Completions, C("\"n\": 1000"), 400, "n"),
        new("n boolean", Completions, C("\"n\": true"), 400, "n"),
        new("too many stops", Completions, C($"\"stop\": [{string.Join(",", Enumerable.Range(0, 20).Select(i => $"\"s{i}\""))}]"), 400, "stop"),
        new("stop number", Completions, C("\"stop\": 5"), 400, "stop"),
        new("stop empty string", Completions, C("\"stop\": \"\""), 400, "stop"),
        new("stop token id over vocab", Completions, C("\"stop_token_ids\": [9999]"), 400, "stop_token_ids"),
        new("logit_bias bad key", Completions, C("\"logit_bias\": {\"abc\": 1}"), 400, "logit_bias"),
        new("logit_bias huge value", Completions, C("\"logit_bias\": {\"5\": 500}"), 400, "logit_bias"),
        new("logit_bias not object", Completions, C("\"logit_bias\": [1]"), 400, "logit_bias"),
        new("logprobs over limit", Completions, C("\"logprobs\": 50"), 400, "logprobs"),
        new("logprobs negative", Completions, C("\"logprobs\": -1"), 400, "logprobs"),
        new("suffix refused", Completions, C("\"suffix\": \"end\""), 400, "suffix"),
        new("prompt_logprobs streamed", Completions, C("\"prompt_logprobs\": 1, \"stream\": true"), 400, "prompt_logprobs"),
        new("prompt_logprobs over limit", Completions, C("\"prompt_logprobs\": 21"), 400, "prompt_logprobs"),
        new("chat prompt_logprobs negative", Chat, Messages(UserHi, "\"prompt_logprobs\": -1"), 400, "prompt_logprobs"),
        new("max_tokens zero without echo", Completions, C("\"max_tokens\": 0, \"echo\": false"), 400, "max_tokens"),
        new("stream_options without stream", Completions, C("\"stream_options\": {\"include_usage\": true}"), 400, "stream_options"),
        new("stream not boolean", Completions, C("\"stream\": \"yes\""), 400, "stream"),
        new("presence_penalty huge", Completions, C("\"presence_penalty\": 5"), 400, "presence_penalty"),
        new("frequency_penalty huge", Completions, C("\"frequency_penalty\": -5"), 400, "frequency_penalty"),
        new("repetition_penalty zero", Completions, C("\"repetition_penalty\": 0"), 400, "repetition_penalty"),
        new("seed string", Completions, C("\"seed\": \"x\""), 400, "seed"),
        new("min_tokens over max_tokens", Completions, C("\"min_tokens\": 5"), 400, "min_tokens"),
        new("best_of over n", Completions, C("\"best_of\": 3"), 400, "best_of"),
        new("unknown model", Completions, Raw("""{"model": "gpt-4", "prompt": "a"}"""), 404, "model"),
        new("model not a string", Completions, Raw("""{"model": 7, "prompt": "a"}"""), 400, "model"),
        new("chat messages missing", Chat, Raw("""{"model": "tiny"}"""), 400, "messages"),
        new("chat messages empty", Chat, Messages("[]"), 400, "messages"),
        new("chat messages not a list", Chat, Messages("\"hi\""), 400, "messages"),
        new("chat bad role", Chat, Messages("""[{"role": "wizard", "content": "hi"}]"""), 400, "messages[0].role"),
        new("chat content number", Chat, Messages("""[{"role": "user", "content": 1}]"""), 400, "messages[0].content"),
        new("chat image part", Chat, Messages("""[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]"""), 400, "messages[0].content[0].type"),
        new("chat top_logprobs without logprobs", Chat, Messages(UserHi, "\"top_logprobs\": 2"), 400, "top_logprobs"),
        new("chat top_logprobs over 20", Chat, Messages(UserHi, "\"logprobs\": true, \"top_logprobs\": 30"), 400, "top_logprobs"),
        new("chat logprobs not boolean", Chat, Messages(UserHi, "\"logprobs\": 3"), 400, "logprobs"),
        new("chat max_completion_tokens zero", Chat, Messages(UserHi, "\"max_completion_tokens\": 0"), 400, "max_completion_tokens"),
        new("chat tools with auto choice, no parser", Chat, Messages(UserHi, "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]"), 400, "tool_choice"),
        new("chat tools not a list", Chat, Messages(UserHi, "\"tools\": {\"type\": \"function\"}"), 400, "tools"),
        new("chat unknown response format", Chat, Messages(UserHi, "\"response_format\": {\"type\": \"yaml\"}"), 400, "response_format.type"),
        new("chat unsupported schema keyword", Chat, Messages(UserHi, "\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"s\", \"schema\": {\"type\": \"object\", \"propertyNames\": {\"maxLength\": 3}}}}"), 400, "response_format.json_schema.schema"),
        new("chat unknown model", Chat, Raw("""{"model": "nope", "messages": [{"role": "user", "content": "hi"}]}"""), 404, "model"),
        new("tokenize nothing", "/tokenize", Raw("""{"model": "tiny"}"""), 400, "prompt"),
        new("tokenize prompt and messages", "/tokenize", Raw("""{"prompt": "a", "messages": [{"role": "user", "content": "b"}]}"""), 400, "messages"),
        new("beam search over 10 beams", Completions, C(""" "use_beam_search": true, "n": 11 """), 400, "n"),
        new("invocations of no api", "/invocations", Raw("""{"max_tokens": 2}"""), 400),
        new("detokenize over vocab", "/detokenize", Raw("""{"tokens": [1, 100000]}"""), 400, "tokens"),
        new("detokenize tokens missing", "/detokenize", Raw("{}"), 400, "tokens"),
        new("body over limit", Completions, Raw($$"""{"prompt": "{{new string('a', 70_000)}}"}"""), 413),
        new("unknown route", "/v1/engines", Raw("{}"), 404),
        new("unknown model route", "/v1/models/gpt-4", null, 404, "model", "GET"),
        new("unknown model id with a slash", "/v1/models/org/gpt-4", null, 404, "model", "GET"),
        new("wrong method", Completions, null, 405, Method: "GET"),
        new("missing api key", Completions, C(""), 401, ApiKey: null),
        new("wrong api key", Completions, C(""), 401, ApiKey: "wrong-key"),
        new("version is not posted", "/version", Raw("{}"), 405),
    ];

    [Fact]
    public async Task EveryBadRequestGetsIts4xxAndTheErrorShapeThenAGoodOneSucceeds()
    {
        var cases = Cases().ToList();
        Assert.True(cases.Count >= 40);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            var problem = await CheckAsync(c);
            if (problem is not null) failures.Add($"{c.Name}: {problem}");
        }
        Assert.Empty(failures);
        var (status, body) = await _server.PostAsync(Completions, new { model = RunningServer.Model, prompt = "Hello", max_tokens = 2 });
        Assert.Equal(200, status);
        Assert.Single(body!["choices"]!.AsArray());
    }

    [Fact]
    public async Task TheLargestMaxTokensIsReportedAsTheSumItAsksFor()
    {
        var (status, body) = await _server.PostAsync(Completions, new { model = RunningServer.Model, prompt = "Hello", max_tokens = int.MaxValue });
        Assert.Equal(400, status);
        var match = System.Text.RegularExpressions.Regex.Match(body!["error"]!["message"]!.GetValue<string>(),
            @"you requested (\d+) tokens \((\d+) in the prompt, (\d+) in the completion\)");
        Assert.True(match.Success, body.ToJsonString());
        Assert.Equal(int.MaxValue, long.Parse(match.Groups[3].Value));
        Assert.Equal(long.Parse(match.Groups[2].Value) + int.MaxValue, long.Parse(match.Groups[1].Value));
    }

    async Task<string?> CheckAsync(Case c)
    {
        using var client = _server.NewClient(c.ApiKey);
        using var request = new HttpRequestMessage(new HttpMethod(c.Method), c.Path);
        if (c.Body is not null)
        {
            request.Content = new ByteArrayContent(c.Body);
            request.Content.Headers.ContentType = c.ContentType.Length > 0 ? new MediaTypeHeaderValue(c.ContentType) : null;
        }
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        if ((int)response.StatusCode != c.Status) return $"status {(int)response.StatusCode}, expected {c.Status}: {text}";
        if (response.Content.Headers.ContentType?.MediaType != "application/json") return $"content type {response.Content.Headers.ContentType}";
        using var doc = JsonDocument.Parse(text);
        if (!doc.RootElement.TryGetProperty("error", out var error)) return $"no error object: {text}";
        if (error.GetProperty("message").ValueKind != JsonValueKind.String || error.GetProperty("message").GetString()!.Length == 0)
            return "no message";
        if (error.GetProperty("type").ValueKind != JsonValueKind.String) return "no type";
        if (error.GetProperty("message").GetString()!.Contains("System.") || error.GetProperty("message").GetString()!.Contains("Serving."))
            return $".NET names in the message: {text}";
        if (!error.TryGetProperty("code", out _)) return "no code";
        var param = error.GetProperty("param");
        if (c.Param is not null && (param.ValueKind != JsonValueKind.String || param.GetString() != c.Param))
            return $"param {param}, expected {c.Param}";
        return null;
    }
}
