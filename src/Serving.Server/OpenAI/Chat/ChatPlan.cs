using System.Text.Json;
using Serving.Engine;

namespace Serving.Server.OpenAI.Chat;

/// A checked /v1/chat/completions request: the conversation rendered by the model's chat template and
/// tokenized, and the engine request for it.
internal sealed record ChatPlan(string Id, long Created, ChatRequest Request, string PromptText, GenerationRequest Generation)
{
    public int N => Generation.Sampling.N;

    public static ChatPlan Create(ChatRequest request, OpenAIServing serving, DateTimeOffset arrival)
    {
        var limits = serving.Limits;
        ValidateChatFields(request, limits);
        SamplingMapper.Validate(request, limits);
        var messages = ChatMessages.Normalize(request.Messages);
        var text = serving.Prompts.ApplyChatTemplate(messages, request.AddGenerationPrompt ?? true, request.ChatTemplateKwargs);
        // The template writes the special tokens itself, so none are added (vLLM's default for chat).
        var ids = serving.Prompts.Encode(text, request.AddSpecialTokens ?? false);
        Check.That(ids.Count > 0, "messages", "The rendered conversation is empty.");
        int? logprobs = request.Logprobs == true ? request.TopLogprobs ?? 0 : null;
        var sampling = SamplingMapper.Map(request, request.MaxCompletionTokens ?? request.MaxTokens, logprobs, ids.Count,
            limits, "messages");
        var id = OpenAIServing.NewId("chatcmpl");
        var generation = new GenerationRequest { RequestId = id, PromptTokenIds = ids, Sampling = sampling, ArrivalTime = arrival };
        return new ChatPlan(id, OpenAIServing.UnixNow(), request, text, generation);
    }

    static void ValidateChatFields(ChatRequest request, RequestLimits limits)
    {
        Check.InRange(request.MaxCompletionTokens, 1, int.MaxValue, "max_completion_tokens");
        Check.InRange(request.TopLogprobs, 0, limits.MaxLogprobs, "top_logprobs");
        Check.That(request.TopLogprobs is null || request.Logprobs == true, "top_logprobs",
            "top_logprobs requires logprobs to be true.");
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
