#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using OpenAI.Chat;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// tool_choice "required" and a named function through the official SDK, whole and streamed, on the embedded
/// random model: the calls are well-formed because constrained decoding writes them; tool messages round-trip.
[Collection("tools")]
public sealed class ToolCallingTests(ToolServer shared)
{
    readonly RunningServer _server = shared.Server;

    const string WeatherParameters = """
        {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8},
         "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"], "additionalProperties": false}
        """;
    const string TimeParameters = """
        {"type": "object", "properties": {"zone": {"type": "string", "pattern": "[A-Z]{3}"}, "hour24": {"type": "boolean"}},
         "required": ["zone"], "additionalProperties": false}
        """;

    static readonly ChatTool Weather = ChatTool.CreateFunctionTool("get_weather", "Weather in a city", BinaryData.FromString(WeatherParameters));
    static readonly ChatTool Time = ChatTool.CreateFunctionTool("get_time", "Time in a zone", BinaryData.FromString(TimeParameters));
    static readonly Dictionary<string, JsonSchema> Validators = new()
    {
        ["get_weather"] = JsonSchema.FromText(WeatherParameters), ["get_time"] = JsonSchema.FromText(TimeParameters),
    };

    ChatClient Chat => _server.OpenAI().GetChatClient(RunningServer.Model);

    static ChatCompletionOptions Options(ChatToolChoice choice, int seed) => new()
    {
        Tools = { Weather, Time }, ToolChoice = choice, MaxOutputTokenCount = 200, Seed = seed,
    };

    static void AssertValidCall(string name, string arguments)
    {
        Assert.True(Validators.ContainsKey(name), name);
        Assert.True(Validators[name].Evaluate(JsonDocument.Parse(arguments).RootElement).IsValid, arguments);
    }

    /// The random model may go on adding parallel calls until max_tokens (a seed whose answer runs out of tokens answers
    /// alike streamed, and is not counted); most seeds end their list of calls.
    [Fact]
    public async Task RequiredReturnsValidCallsWholeAndStreamedAlike()
    {
        var completed = 0;
        for (var seed = 0; seed < 8; seed++)
        {
            ChatCompletion whole = await Chat.CompleteChatAsync([new UserChatMessage("What now?")], Options(ChatToolChoice.CreateRequiredChoice(), seed));
            if (whole.FinishReason == ChatFinishReason.Length)
            {
                var cut = await StreamAsync([new UserChatMessage("What now?")], Options(ChatToolChoice.CreateRequiredChoice(), seed));
                Assert.Equal(ChatFinishReason.Length, cut.Finish);
                continue;
            }
            completed++;
            Assert.Equal(ChatFinishReason.ToolCalls, whole.FinishReason);
            Assert.NotEmpty(whole.ToolCalls);
            Assert.Empty(whole.Content);
            foreach (var call in whole.ToolCalls)
            {
                Assert.StartsWith("call_", call.Id);
                AssertValidCall(call.FunctionName, call.FunctionArguments.ToString());
            }
            var streamed = await StreamAsync([new UserChatMessage("What now?")], Options(ChatToolChoice.CreateRequiredChoice(), seed));
            Assert.Equal(ChatFinishReason.ToolCalls, streamed.Finish);
            Assert.Equal(whole.ToolCalls.Select(c => (c.FunctionName, c.FunctionArguments.ToString())), streamed.Calls.Select(c => (c.Name, c.Arguments)));
        }
        Assert.True(completed >= 6, $"only {completed} of 8 seeds ended their calls within max_tokens");
    }

    [Fact]
    public async Task ANamedFunctionIsCalledWholeAndStreamed()
    {
        for (var seed = 10; seed < 14; seed++)
        {
            var options = Options(ChatToolChoice.CreateFunctionChoice("get_time"), seed);
            ChatCompletion whole = await Chat.CompleteChatAsync([new UserChatMessage("Time?")], options);
            var call = Assert.Single(whole.ToolCalls);
            Assert.Equal("get_time", call.FunctionName);
            AssertValidCall(call.FunctionName, call.FunctionArguments.ToString());
            Assert.Equal(ChatFinishReason.Stop, whole.FinishReason); // OpenAI ends a forced call with "stop"
            var streamed = await StreamAsync([new UserChatMessage("Time?")], Options(ChatToolChoice.CreateFunctionChoice("get_time"), seed));
            var streamedCall = Assert.Single(streamed.Calls);
            Assert.Equal(("get_time", call.FunctionArguments.ToString()), (streamedCall.Name, streamedCall.Arguments));
            Assert.True(streamed.ArgumentChunks > 1, "arguments arrive in pieces, as OpenAI streams them");
        }
    }

    [Fact]
    public async Task AConversationWithAToolResultContinues()
    {
        ChatCompletion first = await Chat.CompleteChatAsync([new UserChatMessage("Weather?")], Options(ChatToolChoice.CreateFunctionChoice("get_weather"), 3));
        var call = first.ToolCalls[0];
        List<ChatMessage> messages =
        [
            new UserChatMessage("Weather?"),
            new AssistantChatMessage(first.ToolCalls),
            new ToolChatMessage(call.Id, """{"temperature": 21.5}"""),
        ];
        ChatCompletion second = await Chat.CompleteChatAsync(messages, new ChatCompletionOptions { Tools = { Weather }, ToolChoice = ChatToolChoice.CreateNoneChoice(), MaxOutputTokenCount = 8 });
        Assert.Empty(second.ToolCalls);
        Assert.NotEmpty(second.Content);
    }

    record StreamedCall(string Name, string Arguments);

    async Task<(List<StreamedCall> Calls, ChatFinishReason? Finish, int ArgumentChunks)> StreamAsync(List<ChatMessage> messages, ChatCompletionOptions options)
    {
        var names = new Dictionary<int, string>();
        var arguments = new Dictionary<int, StringBuilder>();
        ChatFinishReason? finish = null;
        var chunks = 0;
        await foreach (var update in Chat.CompleteChatStreamingAsync(messages, options))
        {
            foreach (var part in update.ToolCallUpdates)
            {
                if (part.FunctionName is { } name)
                {
                    Assert.False(string.IsNullOrEmpty(part.ToolCallId));
                    names[part.Index] = name;
                }
                if (part.FunctionArgumentsUpdate is { } piece && piece.ToString().Length > 0)
                {
                    chunks++;
                    (arguments.TryGetValue(part.Index, out var sb) ? sb : arguments[part.Index] = new StringBuilder()).Append(piece);
                }
            }
            finish = update.FinishReason ?? finish;
        }
        return (names.OrderBy(n => n.Key).Select(n => new StreamedCall(n.Value, arguments[n.Key].ToString())).ToList(), finish, chunks);
    }

    public static TheoryData<string, string> BadToolRequests() => new()
    {
        { """{"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}""", "tool_choice.function.name" },
        { """{"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "if": {}}}}], "tool_choice": "required"}""", "tools[0].function.parameters" },
        { """{"tools": [{"type": "retrieval"}], "tool_choice": "required"}""", "tools[0].type" },
        { """{"tools": [{"type": "function", "function": {"name": "bad name"}}]}""", "tools[0].function.name" },
        { """{"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "sometimes"}""", "tool_choice" },
        { """{"tool_choice": "required"}""", "tool_choice" },
        { """{"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required", "response_format": {"type": "json_object"}}""", "tool_choice" },
        { """{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}""", "messages[1].tool_calls[0].function.arguments" },
        { """{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f"}}]}]}""", "messages[1].tool_calls[0].function.arguments" },
        { """{"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "42"}]}""", "messages[1].tool_call_id" },
        { """{"messages": [{"role": "user", "content": "x", "tool_calls": []}]}""", "messages[0].tool_calls" },
        { """{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": {"id": "1"}}]}""", "messages[1].tool_calls" },
    };

    [Theory]
    [MemberData(nameof(BadToolRequests))]
    public async Task BadToolsAndToolMessagesAre400sNamingTheField(string fields, string param)
    {
        var body = JsonNode.Parse(fields)!.AsObject();
        body["messages"] ??= new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" });
        var (status, error) = await _server.PostAsync("/v1/chat/completions", body.ToJsonString());
        Assert.Equal(400, status);
        Assert.Equal(param, error!["error"]!["param"]!.GetValue<string>());
    }
}

/// Without --enable-auto-tool-choice the default tool_choice ("auto" when tools are given) is refused as vLLM
/// refuses it; "none" and forced choices still work.
[Collection("server")]
public sealed class ToolChoiceWithoutParserTests(SharedServer shared)
{
    [Fact]
    public async Task AutoNeedsTheFlagsAndNoneDoesNot()
    {
        var tools = new JsonArray(new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "f" } });
        var messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" });
        var (status, error) = await shared.Server.PostAsync("/v1/chat/completions", new JsonObject { ["messages"] = messages.DeepClone(), ["tools"] = tools.DeepClone() }.ToJsonString());
        Assert.Equal(400, status);
        Assert.Equal("tool_choice", error!["error"]!["param"]!.GetValue<string>());
        Assert.Contains("--enable-auto-tool-choice", error["error"]!["message"]!.GetValue<string>());
        (status, _) = await shared.Server.PostAsync("/v1/chat/completions",
            new JsonObject { ["messages"] = messages.DeepClone(), ["tools"] = tools.DeepClone(), ["tool_choice"] = "none", ["max_tokens"] = 2 }.ToJsonString());
        Assert.Equal(200, status);
    }
}
