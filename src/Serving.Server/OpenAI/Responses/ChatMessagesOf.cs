using System.Text.Json.Nodes;

namespace Serving.Server.OpenAI.Responses;

/// A Responses conversation as the chat API's "messages", which the chat template renders: the instructions as the
/// first system message; a turn's reasoning, assistant text and function calls as one assistant message (its
/// "reasoning", "content" and "tool_calls"), as a chat client sends an answer back; each function output as a tool
/// message. A message of several text parts keeps them as the chat API's parts (the engine joins them for a template
/// that reads strings).
internal static class ChatMessagesOf
{
    public static JsonArray Conversation(string? instructions, IEnumerable<ResponseItem> items)
    {
        var messages = new JsonArray();
        if (instructions is not null) messages.Add(new JsonObject { ["role"] = "system", ["content"] = instructions });
        JsonObject? turn = null;   // the assistant message being assembled
        void EndTurn()
        {
            if (turn is not null) messages.Add(turn);
            turn = null;
        }
        foreach (var item in items)
            switch (item)
            {
                case MessageItem { Role: "assistant" } message:
                    // the text of a turn that so far only thought joins it; otherwise it starts a new one
                    if (turn is null || turn.ContainsKey("content") || turn.ContainsKey("tool_calls")) EndTurn();
                    turn ??= Assistant();
                    turn["content"] = Content(message);
                    break;
                case MessageItem message:
                    EndTurn();
                    messages.Add(new JsonObject { ["role"] = message.Role, ["content"] = Content(message) });
                    break;
                case ReasoningItem reasoning:
                    EndTurn();
                    turn = Assistant();
                    turn["reasoning"] = reasoning.Text;
                    break;
                case FunctionCallItem call:
                    turn ??= Assistant();
                    if (turn["tool_calls"] is not JsonArray calls) turn["tool_calls"] = calls = [];
                    calls.Add(new JsonObject
                    {
                        ["id"] = call.CallId, ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = call.Name, ["arguments"] = call.Arguments },
                    });
                    break;
                case FunctionCallOutputItem output:
                    EndTurn();
                    messages.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = output.CallId, ["content"] = output.Output });
                    break;
            }
        EndTurn();
        return messages;
    }

    static JsonObject Assistant() => new() { ["role"] = "assistant" };

    static JsonNode? Content(MessageItem message) => message.Content.Count == 1
        ? message.Content[0].Text
        : new JsonArray([.. message.Content.Select(part => new JsonObject { ["type"] = "text", ["text"] = part.Text })]);
}
