#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK
using System.Text.Json;
using Json.Schema;
using OpenAI.Chat;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// Structured outputs through the official SDK's response_format API on the embedded default model (random
/// weights: it writes whatever it likes, and the grammar keeps it inside the schema). A hundred requests per
/// schema, all at once, each checked by a real JSON Schema validator.
[Collection("tools")]
public sealed class StructuredOutputTests(ToolServer shared)
{
    readonly RunningServer _server = shared.Server;

    public static TheoryData<string, string> Schemas() => new()
    {
        { "nested_objects", """
            {"type": "object", "properties": {
                "user": {"type": "object", "properties": {
                    "name": {"type": "string", "maxLength": 8},
                    "address": {"type": "object", "properties": {
                        "city": {"type": "string", "maxLength": 8}, "zip": {"type": "string", "pattern": "\\d{5}"}},
                     "required": ["city", "zip"], "additionalProperties": false}},
                 "required": ["name", "address"], "additionalProperties": false},
                "active": {"type": "boolean"}},
             "required": ["user", "active"], "additionalProperties": false}
            """ },
        { "arrays", """
            {"type": "object", "properties": {
                "lines": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "object", "properties": {
                    "sku": {"type": "string", "pattern": "[A-Z]{3}-\\d{3}"}, "qty": {"type": "integer", "minimum": 1, "maximum": 99}},
                    "required": ["sku", "qty"], "additionalProperties": false}},
                "notes": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 5}}},
             "required": ["lines", "notes"], "additionalProperties": false}
            """ },
        { "enums_and_any_of", """
            {"type": "object", "properties": {
                "status": {"type": "string", "enum": ["open", "closed", "on hold"]},
                "priority": {"enum": [1, 2, 3, null]},
                "payload": {"anyOf": [
                    {"type": "string", "maxLength": 6},
                    {"type": "integer", "minimum": -100, "maximum": 100},
                    {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": false},
                    {"type": "null"}]}},
             "required": ["status", "priority", "payload"], "additionalProperties": false}
            """ },
        { "numbers", """
            {"type": "object", "properties": {
                "price": {"type": "number", "minimum": 0, "maximum": 1000},
                "delta": {"type": "number", "minimum": -50, "maximum": 50},
                "count": {"type": "integer"},
                "ratio": {"type": "number"},
                "when": {"type": "string", "format": "date"}},
             "required": ["price", "delta", "count", "ratio", "when"], "additionalProperties": false}
            """ },
    };

    [Theory]
    [MemberData(nameof(Schemas))]
    public async Task AHundredRequestsReturnJsonThatValidates(string name, string schema)
    {
        var chat = _server.OpenAI().GetChatClient(RunningServer.Model);
        var validator = JsonSchema.FromText(schema);
        var tasks = Enumerable.Range(0, 100).Select(async seed =>
        {
            var options = new ChatCompletionOptions
            {
                // no max_tokens: all the context the prompt leaves (~230 of the model's 256), ample for these schemas
                ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat(name, BinaryData.FromString(schema), jsonSchemaIsStrict: true),
                Seed = seed,
            };
            ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage($"Give me {name} #{seed}.")], options);
            return completion;
        });
        foreach (var completion in await Task.WhenAll(tasks))
        {
            var text = completion.Content[0].Text;
            Assert.True(completion.FinishReason == ChatFinishReason.Stop, $"{completion.FinishReason}: {text}");
            var result = validator.Evaluate(JsonDocument.Parse(text).RootElement, new EvaluationOptions { RequireFormatValidation = true });
            Assert.True(result.IsValid, text);
        }
    }

    [Fact]
    public async Task JsonObjectModeStreamsAnObject()
    {
        var chat = _server.OpenAI().GetChatClient(RunningServer.Model);
        var options = new ChatCompletionOptions { ResponseFormat = ChatResponseFormat.CreateJsonObjectFormat(), MaxOutputTokenCount = 200, Seed = 5 };
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("JSON, please.")], options))
        {
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish = update.FinishReason ?? finish;
        }
        if (finish == ChatFinishReason.Stop) Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(text.ToString()).RootElement.ValueKind);
        else Assert.StartsWith("{", text.ToString()); // free-form JSON may not close within the budget
    }

    [Fact]
    public async Task VllmStructuredOutputsOnCompletions()
    {
        var (status, body) = await _server.PostAsync("/v1/completions", new Dictionary<string, object>
        {
            ["prompt"] = "The answer is", ["max_tokens"] = 20, ["seed"] = 1,
            ["structured_outputs"] = new Dictionary<string, object> { ["choice"] = new[] { "yes", "no" } },
        });
        Assert.Equal(200, status);
        Assert.Contains(body!["choices"]![0]!["text"]!.GetValue<string>(), new[] { "yes", "no" });
        (status, body) = await _server.PostAsync("/v1/completions", new Dictionary<string, object>
        {
            ["prompt"] = "Code:", ["max_tokens"] = 20, ["seed"] = 2, ["guided_regex"] = "[A-F]{2}\\d{3}",
        });
        Assert.Equal(200, status);
        Assert.Matches("^[A-F]{2}\\d{3}$", body!["choices"]![0]!["text"]!.GetValue<string>());
        (status, body) = await _server.PostAsync("/v1/completions", new Dictionary<string, object>
        {
            ["prompt"] = "Data:", ["max_tokens"] = 60, ["seed"] = 3, ["structured_outputs"] = new { json = new { type = "array", items = new { type = "boolean" }, maxItems = 3 } },
        });
        Assert.Equal(200, status);
        Assert.Equal(JsonValueKind.Array, JsonDocument.Parse(body!["choices"]![0]!["text"]!.GetValue<string>()).RootElement.ValueKind);
    }

    /// Lists of small numbers and lists, two deep (a finite language, so every answer ends by itself), checked by a
    /// recognizer of its own.
    const string NestedLists = """
        root   ::= list # comments and rules over several lines, as GBNF allows
        list   ::= "[" (value ("," value){0,3})? "]"
        value  ::= inner | number
        inner  ::= "[" (number ("," number){0,3})? "]"
        number ::= [1-9] [0-9]?
        """;

    static bool IsNestedList(string text)
    {
        var at = 0;
        bool List()
        {
            if (at >= text.Length || text[at++] != '[') return false;
            if (at < text.Length && text[at] == ']') return ++at > 0;
            for (var items = 0; items < 4; items++)
            {
                if (at < text.Length && text[at] == '[') { if (!List()) return false; }
                else
                {
                    if (at >= text.Length || text[at] is < '1' or > '9') return false;
                    at++;
                    if (at < text.Length && char.IsAsciiDigit(text[at])) at++;
                }
                if (at < text.Length && text[at] == ']') return ++at > 0;
                if (at >= text.Length || text[at++] != ',') return false;
            }
            return false;
        }
        return List() && at == text.Length;
    }

    /// allowed_token_ids that exclude every token the constraint allows are the client's error: a 400 naming
    /// structured_outputs, streamed or not, not a server failure; the server serves on.
    [Fact]
    public async Task ConstraintsThatLeaveNoTokenAreA400()
    {
        var (_, tokens) = await _server.PostAsync("/tokenize", new { model = RunningServer.Model, prompt = "123", add_special_tokens = false });
        var digits = tokens!["tokens"]!.AsArray().Select(t => t!.GetValue<int>()).ToArray();
        var request = new Dictionary<string, object>
        {
            ["prompt"] = "Name:", ["max_tokens"] = 8, ["allowed_token_ids"] = digits,
            ["structured_outputs"] = new Dictionary<string, object> { ["regex"] = "[a-z]+" },
        };
        var (status, body) = await _server.PostAsync("/v1/completions", request);
        Assert.Equal(400, status);
        Assert.Equal("structured_outputs", body!["error"]!["param"]!.GetValue<string>());
        Assert.Contains("allowed_token_ids", body["error"]!["message"]!.GetValue<string>());

        // streamed, the refusal comes before the stream's first event: a 400 too
        request["stream"] = true;
        (status, body) = await _server.PostAsync("/v1/completions", request);
        Assert.Equal(400, status);
        Assert.Equal("structured_outputs", body!["error"]!["param"]!.GetValue<string>());
        (status, _) = await _server.PostAsync("/v1/completions", new { prompt = "Name:", max_tokens = 2 });
        Assert.Equal(200, status);
    }

    [Fact]
    public async Task AGrammarConstrainsChatAndCompletionsWholeAndStreamed()
    {
        for (var seed = 0; seed < 6; seed++)
        {
            var (status, chat) = await _server.PostAsync("/v1/chat/completions", new Dictionary<string, object>
            {
                ["messages"] = new[] { new { role = "user", content = "Numbers?" } }, ["max_tokens"] = 120, ["seed"] = seed,
                ["structured_outputs"] = new { grammar = NestedLists },
            });
            Assert.Equal(200, status);
            var text = chat!["choices"]![0]!["message"]!["content"]!.GetValue<string>();
            Assert.Equal("stop", chat["choices"]![0]!["finish_reason"]!.GetValue<string>());
            Assert.True(IsNestedList(text), text);

            var (response, events) = await _server.StreamAsync("/v1/completions", new Dictionary<string, object>
            {
                ["prompt"] = "Numbers:", ["max_tokens"] = 120, ["seed"] = seed, ["stream"] = true, ["guided_grammar"] = NestedLists,
            });
            using (response)
            using (events)
            {
                var chunks = await events.ReadAllAsync();
                var streamed = string.Concat(chunks.Select(c => c["choices"]![0]!["text"]!.GetValue<string>()));
                Assert.Equal("stop", chunks[^1]["choices"]![0]!["finish_reason"]!.GetValue<string>());
                Assert.True(IsNestedList(streamed), streamed);
            }
        }
    }

    public static TheoryData<string, string> BadConstraints() => new()
    {
        { """{"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "not": {}}}}}""", "response_format.json_schema.schema" },
        { """{"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "integer", "minimum": "1"}}}}""", "response_format.json_schema.schema" },
        { """{"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}}""", "response_format.json_schema.name" },
        { """{"response_format": {"type": "xml"}}""", "response_format.type" },
        { """{"structured_outputs": {"grammar": "root ::= item"}}""", "structured_outputs.grammar" },
        { """{"structured_outputs": {"grammar": "root ::= root \"a\" | \"b\""}}""", "structured_outputs.grammar" },
        { """{"structured_outputs": {"regex": "(a"}}""", "structured_outputs.regex" },
        { """{"structured_outputs": {"choice": []}}""", "structured_outputs.choice" },
        { """{"guided_json": {"$ref": "#/$defs/nope"}}""", "guided_json" },
        { """{"guided_grammar": "x"}""", "guided_grammar" },
        { """{"response_format": {"type": "json_object"}, "guided_regex": "a+"}""", "guided_regex" },
    };

    [Theory]
    [MemberData(nameof(BadConstraints))]
    public async Task BadConstraintsAre400sNamingTheField(string fields, string param)
    {
        var body = System.Text.Json.Nodes.JsonNode.Parse(fields)!.AsObject();
        body["messages"] = new System.Text.Json.Nodes.JsonArray(new System.Text.Json.Nodes.JsonObject { ["role"] = "user", ["content"] = "hi" });
        var (status, error) = await _server.PostAsync("/v1/chat/completions", body.ToJsonString());
        Assert.Equal(400, status);
        Assert.Equal(param, error!["error"]!["param"]!.GetValue<string>());
    }
}
