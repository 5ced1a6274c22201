using System.Text.Json;
using Serving.Engine;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI.Chat;

/// A checked /v1/chat/completions request: the conversation rendered by the model's chat template and
/// tokenized, and the engine request for it.
internal sealed record ChatPlan(string Id, long Created, ChatRequest Request, string PromptText, GenerationRequest Generation)
{
    public int N => Generation.Sampling.N;

    public static ChatPlan Create(ChatRequest request, ServingContext serving)
    {
        var limits = serving.Limits;
        ValidateChatFields(request);
        var logprobs = SamplingRules.Logprobs(request.Logprobs == true, request.TopLogprobs, limits);
        var fields = SamplingMapper.Read(request, request.MaxCompletionTokens ?? request.MaxTokens, logprobs, limits);
        SamplingRules.Sequences(1, fields.N, limits);
        var text = ChatPrompt.Render(serving, request.Messages, request.AddGenerationPrompt ?? true,
            request.ChatTemplateKwargs, request.ChatTemplate);
        // The template writes the special tokens itself, so none are added (vLLM's default for chat).
        var ids = serving.Prompts.Encode(text, request.AddSpecialTokens ?? false, "messages");
        Check.That(ids.Count > 0, "messages", "The rendered conversation is empty.");
        var sampling = SamplingRules.ToSamplingParams(fields, ids.Count, limits, "messages");
        var id = ServingContext.NewId("chatcmpl");
        var generation = new GenerationRequest { RequestId = id, PromptTokenIds = ids, Sampling = sampling };
        return new ChatPlan(id, ServingContext.UnixNow(), request, text, generation);
    }

    static void ValidateChatFields(ChatRequest request)
    {
        Check.InRange(request.MaxCompletionTokens, 1, int.MaxValue, "max_completion_tokens");
        // max_completion_tokens wins as the budget, but a bad max_tokens beside it is still refused.
        Check.InRange(request.MaxTokens, 1, int.MaxValue, "max_tokens");
        if (request.Tools is { } tools) Check.ValidText(tools, "tools");
        if (request.ResponseFormat is { } format) Check.ValidText(format, "response_format");
        Check.That(request.Tools is null or { ValueKind: JsonValueKind.Null } || request.Tools is { ValueKind: JsonValueKind.Array } t && t.GetArrayLength() == 0,
            "tools", "Tool calling is not supported.");
        Check.That(request.ResponseFormat is null or { ValueKind: JsonValueKind.Null } || IsTextFormat(request.ResponseFormat.Value),
            "response_format", "Only response_format {\"type\": \"text\"} is supported.");
    }

    static bool IsTextFormat(JsonElement format) =>
        format.ValueKind == JsonValueKind.Object && format.TryGetProperty("type", out var type)
        && type.ValueKind == JsonValueKind.String && Check.Text(type, "response_format") == "text";

    public ChatChoiceState[] NewChoiceStates(IPromptProcessor prompts) =>
        [.. Enumerable.Range(0, N).Select(i => new ChatChoiceState(i, Request.ReturnTokenIds == true, prompts))];
}
