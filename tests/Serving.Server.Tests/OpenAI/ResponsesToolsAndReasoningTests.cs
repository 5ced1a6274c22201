#pragma warning disable OPENAI001, SCME0001 // the SDK marks its Responses client (and setting extra fields) experimental
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using OpenAI.Responses;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// Function calls and reasoning through /v1/responses on the embedded random model (hermes tool parser, qwen3
/// reasoning parser): calls forced by tool_choice come as function_call items, whole and streamed alike, and their
/// outputs continue the conversation as the chat API's tool messages do; thinking comes as a reasoning item.
[Collection("tools")]
public sealed class ResponsesToolsAndReasoningTests(ToolServer shared)
{
    readonly RunningServer _server = shared.Server;

    const string WeatherParameters = """
        {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"], "additionalProperties": false}
        """;

    static readonly ResponseTool Weather = ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString(WeatherParameters), null, "Weather in a city");

    ResponsesClient Responses => _server.OpenAI().GetResponsesClient();

    CreateResponseOptions WeatherCall(int seed, bool stream = false)
    {
        var options = new CreateResponseOptions(RunningServer.Model, [ResponseItem.CreateUserMessageItem("Weather in Paris?")])
        {
            Tools = { Weather }, ToolChoice = ResponseToolChoice.CreateFunctionChoice("get_weather"), MaxOutputTokenCount = 60,
            StreamingEnabled = stream,
        };
        options.Patch.Set("$.seed"u8, seed);
        return options;
    }

    [Fact]
    public async Task AForcedCallIsAFunctionCallItemWholeAndStreamed()
    {
        var schema = JsonSchema.FromText(WeatherParameters);
        for (var seed = 0; seed < 3; seed++)
        {
            ResponseResult whole = await Responses.CreateResponseAsync(WeatherCall(seed));
            var call = Assert.IsType<FunctionCallResponseItem>(Assert.Single(whole.OutputItems));
            Assert.Equal("get_weather", call.FunctionName);
            Assert.StartsWith("call_", call.CallId);
            Assert.True(schema.Evaluate(JsonDocument.Parse(call.FunctionArguments.ToString()).RootElement).IsValid, call.FunctionArguments.ToString());

            var arguments = new StringBuilder();
            var updates = new List<StreamingResponseUpdate>();
            await foreach (var update in Responses.CreateResponseStreamingAsync(WeatherCall(seed, stream: true)))
            {
                updates.Add(update);
                if (update is StreamingResponseFunctionCallArgumentsDeltaUpdate delta) arguments.Append(delta.Delta.ToString());
            }
            Assert.Equal(call.FunctionArguments.ToString(), arguments.ToString());
            Assert.True(updates.OfType<StreamingResponseFunctionCallArgumentsDeltaUpdate>().Count() > 1, "arguments arrive in pieces");
            var done = Assert.IsType<FunctionCallResponseItem>(updates.OfType<StreamingResponseOutputItemDoneUpdate>().Single().Item);
            Assert.Equal((call.FunctionName, call.FunctionArguments.ToString()), (done.FunctionName, done.FunctionArguments.ToString()));
            var final = Assert.IsType<StreamingResponseCompletedUpdate>(updates[^1]).Response;
            Assert.Equal(done.Id, final.OutputItems.Single().Id);
        }
    }

    [Fact]
    public async Task AFunctionOutputContinuesAsTheChatApisToolMessage()
    {
        ResponseResult first = await Responses.CreateResponseAsync(WeatherCall(7));
        var call = (FunctionCallResponseItem)first.OutputItems.Single();
        var (status, next) = await _server.PostAsync("/v1/responses", new Dictionary<string, object?>
        {
            ["model"] = RunningServer.Model, ["previous_response_id"] = first.Id, ["max_output_tokens"] = 8, ["temperature"] = 0,
            ["input"] = new[] { new { type = "function_call_output", call_id = call.CallId, output = """{"temperature": 21}""" } },
            ["tools"] = new[] { new { type = "function", name = "get_weather", description = "Weather in a city", parameters = JsonNode.Parse(WeatherParameters) } },
            ["tool_choice"] = "none",
        });
        Assert.Equal(200, status);
        var (_, chat) = await _server.PostAsync("/v1/chat/completions", new Dictionary<string, object?>
        {
            ["model"] = RunningServer.Model, ["max_tokens"] = 8, ["temperature"] = 0, ["tool_choice"] = "none",
            ["tools"] = new[] { new { type = "function", function = new { name = "get_weather", description = "Weather in a city", parameters = JsonNode.Parse(WeatherParameters) } } },
            ["messages"] = new object[]
            {
                new { role = "user", content = "Weather in Paris?" },
                new { role = "assistant", content = (string?)null, tool_calls = new[] { new { id = call.CallId, type = "function", function = new { name = "get_weather", arguments = call.FunctionArguments.ToString() } } } },
                new { role = "tool", tool_call_id = call.CallId, content = """{"temperature": 21}""" },
            },
        });
        Assert.Equal(chat!["usage"]!["prompt_tokens"]!.GetValue<int>(), next!["usage"]!["input_tokens"]!.GetValue<int>());
        var text = chat["choices"]![0]!["message"]!["content"]!.GetValue<string>();
        Assert.Equal(text, string.Concat(next["output"]!.AsArray().Where(i => i!["type"]!.GetValue<string>() == "message")
            .Select(i => i!["content"]![0]!["text"]!.GetValue<string>())));
    }

    const string Thinking = "<think>\\n[a-z]{2,8}\\n</think>\\n\\n[a-z]{2,8}";

    static Dictionary<string, object?> ThinkingRequest(int seed, bool stream = false) => new()
    {
        ["model"] = RunningServer.Model, ["input"] = "Capital of France?", ["max_output_tokens"] = 64, ["seed"] = seed,
        ["temperature"] = 1.0, ["stream"] = stream, ["structured_outputs"] = new { regex = Thinking },
    };

    [Fact]
    public async Task ThinkingIsAReasoningItemWholeAndStreamed()
    {
        for (var seed = 0; seed < 3; seed++)
        {
            var (status, whole) = await _server.PostAsync("/v1/responses", ThinkingRequest(seed));
            Assert.Equal(200, status);
            var output = whole!["output"]!.AsArray();
            Assert.Equal(["reasoning", "message"], output.Select(i => i!["type"]!.GetValue<string>()));
            var reasoning = output[0]!["content"]![0]!["text"]!.GetValue<string>();
            var content = output[1]!["content"]![0]!["text"]!.GetValue<string>();
            Assert.Matches("^\\n[a-z]{2,8}\\n$", reasoning);
            Assert.Matches("^\\n\\n[a-z]{2,8}$", content);
            var usage = whole["usage"]!;
            var reasoningTokens = usage["output_tokens_details"]!["reasoning_tokens"]!.GetValue<int>();
            Assert.InRange(reasoningTokens, 3, usage["output_tokens"]!.GetValue<int>() - 1);

            // the chat API divides the same answer the same way
            var (_, chat) = await _server.PostAsync("/v1/chat/completions", new Dictionary<string, object?>
            {
                ["model"] = RunningServer.Model, ["messages"] = new[] { new { role = "user", content = "Capital of France?" } }, ["max_tokens"] = 64,
                ["seed"] = seed, ["temperature"] = 1.0, ["structured_outputs"] = new { regex = Thinking },
            });
            Assert.Equal(reasoning, chat!["choices"]![0]!["message"]!["reasoning"]!.GetValue<string>());
            Assert.Equal(content, chat["choices"]![0]!["message"]!["content"]!.GetValue<string>());

            var (response, events) = await _server.StreamAsync("/v1/responses", ThinkingRequest(seed, stream: true));
            using (response)
            using (events)
            {
                var all = await events.ReadAllAsync();
                string Joined(string type) => string.Concat(all.Where(e => e["type"]!.GetValue<string>() == type).Select(e => e["delta"]!.GetValue<string>()));
                Assert.Equal(reasoning, Joined("response.reasoning_text.delta"));
                Assert.Equal(content, Joined("response.output_text.delta"));
                var final = all[^1];
                Assert.Equal("response.completed", final["type"]!.GetValue<string>());
                Assert.Equal(reasoningTokens, final["response"]!["usage"]!["output_tokens_details"]!["reasoning_tokens"]!.GetValue<int>());
                Assert.Equal([0, 1], all.Where(e => e["type"]!.GetValue<string>() == "response.output_item.added").Select(e => e["output_index"]!.GetValue<int>()));
            }
        }
    }
}
