using System.Text.Json.Nodes;
using Serving.Server.OpenAI.Responses;

namespace Serving.Server.Tests.OpenAI.Responses;

/// A Responses conversation as the chat API's messages: one assistant message per turn, holding the turn's thinking,
/// text and calls, as a chat client sends an answer back; a message of several text parts keeps its parts.
public sealed class ChatMessagesOfTests
{
    static ContentPart Text(string type, string text) => new(type, text);

    [Fact]
    public void EachTurnIsOneAssistantMessageWithItsThinkingTextAndCalls()
    {
        ResponseItem[] items =
        [
            new MessageItem("m1", "developer", [Text("input_text", "Use tools.")], "completed"),
            new MessageItem("m2", "user", [Text("input_text", "Weather"), Text("input_text", "in Paris?")], "completed"),
            new ReasoningItem("r1", [Text("summary_text", "summary")], [Text("reasoning_text", "look it up")], "completed"),
            new MessageItem("m3", "assistant", [Text("output_text", "Checking.")], "completed"),
            new FunctionCallItem("f1", "call_1", "get_weather", """{"city": "Paris"}""", "completed"),
            new FunctionCallItem("f2", "call_2", "get_time", "{}", "completed"),
            new FunctionCallOutputItem("o1", "call_1", "sunny", "completed"),
            new FunctionCallOutputItem("o2", "call_2", "noon", "completed"),
            new ReasoningItem("r2", [Text("summary_text", "only a summary")], [], "completed"),
            new MessageItem("m4", "assistant", [Text("output_text", "Sunny at noon.")], "completed"),
            new MessageItem("m5", "assistant", [Text("output_text", "Anything else?")], "completed"),
        ];
        var expected = JsonNode.Parse("""
            [
              {"role": "system", "content": "Be brief."},
              {"role": "developer", "content": "Use tools."},
              {"role": "user", "content": [{"type": "text", "text": "Weather"}, {"type": "text", "text": "in Paris?"}]},
              {"role": "assistant", "reasoning": "look it up", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
              {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
              {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
              {"role": "assistant", "reasoning": "only a summary", "content": "Sunny at noon."},
              {"role": "assistant", "content": "Anything else?"}
            ]
            """);
        Assert.True(JsonNode.DeepEquals(expected, ChatMessagesOf.Conversation("Be brief.", items)),
            ChatMessagesOf.Conversation("Be brief.", items).ToJsonString());
    }

    [Fact]
    public void CallsWithoutTextAreAnAssistantMessageOfCallsOnly()
    {
        var messages = ChatMessagesOf.Conversation(null,
            [new MessageItem("m", "user", [Text("input_text", "Hi")], "completed"), new FunctionCallItem("f", "call_9", "ping", "{}", "completed")]);
        Assert.Equal("""[{"role":"user","content":"Hi"},{"role":"assistant","tool_calls":[{"id":"call_9","type":"function","function":{"name":"ping","arguments":"{}"}}]}]""",
            messages.ToJsonString());
    }
}
