using Serving.Server.Generation;
using System.Text.Json.Nodes;
using Serving.Engine;
using Serving.Grpc.V1;
using Serving.Server.Errors;
using Serving.Server.OpenAI;

namespace Serving.Server.Grpc;

/// A GenerateRequest's prompt as token ids. Param names the input field in error messages; Operation is
/// the GenAI operation name its metrics and span carry.
internal sealed record GrpcPrompt(IReadOnlyList<int> TokenIds, string Text, string Param, string Operation);

/// Reads the three input forms like the HTTP API does: text is tokenized, token ids are taken as they are, a chat
/// is rendered with the model's template and tokenized; add_special_tokens as PromptEncoding.AddSpecialTokens says.
internal static class GrpcPrompts
{
    public static GrpcPrompt Resolve(GenerateRequest request, IPromptProcessor prompts)
    {
        var prompt = request.InputCase switch
        {
            GenerateRequest.InputOneofCase.Text => FromText(request.Text, Requested(request), prompts),
            GenerateRequest.InputOneofCase.TokenIds => FromTokenIds(request.TokenIds.Ids, prompts),
            GenerateRequest.InputOneofCase.Chat => FromChat(request.Chat, Requested(request), prompts),
            _ => throw ApiException.BadRequest("input is required: set text, token_ids or chat.", "input"),
        };
        Check.That(prompt.TokenIds.Count > 0, prompt.Param, $"{prompt.Param} must not be empty (it gives no tokens).");
        return prompt;
    }

    /// An Embed input as token ids (its param names the field in errors: inputs[i].text, ...); keepLast keeps its last
    /// tokens (truncate_prompt_tokens). A chat gets no generation prompt unless it asks for one.
    public static IReadOnlyList<int> Resolve(EmbedInput input, int index, bool? addSpecialTokens, int? keepLast, IPromptProcessor prompts,
        Serving.Engine.ModelInfo model)
    {
        var field = $"inputs[{index}]";
        IReadOnlyList<int> ids = input.InputCase switch
        {
            EmbedInput.InputOneofCase.Text => prompts.Encode(input.Text, PromptEncoding.AddSpecialTokens(addSpecialTokens, chat: false), $"{field}.text", keepLast),
            EmbedInput.InputOneofCase.TokenIds => PromptEncoding.Tail([.. input.TokenIds.Ids], keepLast),
            EmbedInput.InputOneofCase.Chat => prompts.Encode(RenderChat(input.Chat, prompts, defaultGenerationPrompt: false, $"{field}.chat"),
                PromptEncoding.AddSpecialTokens(addSpecialTokens, chat: true), $"{field}.chat.messages", keepLast),
            _ => throw ApiException.BadRequest($"{field} is empty: set text, token_ids or chat.", field),
        };
        Check.That(ids.Count > 0, field, $"{field} must not be empty (it gives no tokens).");
        Check.TokenIds(ids, prompts.VocabSize, field);
        model.CheckPooledPrompt(ids.Count, field);
        return ids;
    }

    /// The conversation rendered by the model's chat template (Tokenize shows the same tokens). Without
    /// add_generation_prompt it gets one unless it continues its final message (or defaultGenerationPrompt is false).
    /// field: the chat's name in refusals (an Embed input's is inputs[i].chat).
    public static string RenderChat(ChatInput chat, IPromptProcessor prompts, bool defaultGenerationPrompt = true, string field = "chat")
    {
        Check.That(chat.Messages.Count > 0, $"{field}.messages", $"{field}.messages must not be empty.");
        var messages = new JsonArray();
        for (var i = 0; i < chat.Messages.Count; i++)
        {
            var message = chat.Messages[i];
            messages.Add(ChatMessages.Message(message.Role, message.Content, message.Name.Length == 0 ? null : message.Name,
                message.ToolCallId.Length == 0 ? null : message.ToolCallId, $"{field}.messages[{i}]"));
        }
        var kwargs = chat.ChatTemplateKwargs is { } fields
            ? JsonNode.Parse(Google.Protobuf.JsonFormatter.Default.Format(fields))!.AsObject()
            : null;
        Check.That(!(chat.ContinueFinalMessage && chat.HasAddGenerationPrompt && chat.AddGenerationPrompt), $"{field}.continue_final_message",
            "continue_final_message and add_generation_prompt cannot both be true.");
        var addGenerationPrompt = chat.HasAddGenerationPrompt ? chat.AddGenerationPrompt : defaultGenerationPrompt && !chat.ContinueFinalMessage;
        return prompts.ApplyChatTemplate(messages, addGenerationPrompt, kwargs, continueFinalMessage: chat.ContinueFinalMessage);
    }

    /// An empty text still gets what the tokenizer adds (BOS), as the HTTP API does.
    static bool? Requested(GenerateRequest request) => request.HasAddSpecialTokens ? request.AddSpecialTokens : null;

    static GrpcPrompt FromText(string text, bool? addSpecialTokens, IPromptProcessor prompts) =>
        new(prompts.Encode(text, PromptEncoding.AddSpecialTokens(addSpecialTokens, chat: false), "text"), text, "text", "text_completion");

    static GrpcPrompt FromTokenIds(IReadOnlyList<int> ids, IPromptProcessor prompts)
    {
        Check.TokenIds(ids, prompts.VocabSize, "token_ids");
        // Text is for --enable-log-requests only, which shows token-id prompts by their count (as HTTP does).
        return new GrpcPrompt([.. ids], $"<{ids.Count} token ids>", "token_ids", "text_completion");
    }

    static GrpcPrompt FromChat(ChatInput chat, bool? addSpecialTokens, IPromptProcessor prompts)
    {
        var text = RenderChat(chat, prompts);
        return new GrpcPrompt(prompts.Encode(text, PromptEncoding.AddSpecialTokens(addSpecialTokens, chat: true), "chat.messages"), text,
            "chat.messages", "chat");
    }
}
