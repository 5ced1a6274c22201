using Serving.Engine;
using Serving.Server.Generation;
using Serving.Server.OpenAI.Reasoning;
using Serving.Server.OpenAI.Tools;

namespace Serving.Server.OpenAI.Chat;

/// A checked /v1/chat/completions request: the conversation rendered by the model's chat template and
/// tokenized, the engine request for it, how its answers may call tools, and (with a reasoning parser) where their
/// thinking goes, and the role its answers carry.
internal sealed record ChatPlan(string Id, long Created, ServedModel Model, ChatRequest Request, string PromptText,
    GenerationRequest Generation, ChatTools Tools, string? ToolCallParser, ReasoningPart? Reasoning, string Role)
{
    public int N => Generation.Sampling.N;

    /// requestIds: the response's and the engine's ids (the chat API's "chatcmpl-..." from the client's id or a new
    /// one, ClientRequestId; the Responses API's client id whole, or its own "resp_...").
    public static ChatPlan Create(ChatRequest request, ServingContext serving, RequestIds requestIds)
    {
        var model = serving.Resolve(request.Model);
        var limits = serving.Limits;
        ValidateChatFields(request);
        var logprobs = SamplingRules.Logprobs(request.Logprobs == true, request.TopLogprobs, limits);
        var fields = SamplingMapper.Read(request, request.MaxCompletionTokens ?? request.MaxTokens, logprobs, limits);
        SamplingRules.Sequences(1, fields.N, limits);
        if (request.Tools is { } requestTools) Check.ValidText(requestTools, "tools");
        var tools = ChatTools.Read(request, serving.Options);
        if (tools.Constraint is { } forced)
        {
            Check.That(fields.StructuredOutputs is null, "tool_choice",
                "A required or named tool_choice cannot be combined with response_format or structured_outputs.");
            fields = fields with { StructuredOutputs = forced };
        }
        var keepLast = PromptEncoding.KeepLast(request.TruncatePromptTokens, limits.MaxModelLen);
        Check.That(request.ReasoningEffort is null || ChatPrompt.ReasoningEfforts.Contains(request.ReasoningEffort), "reasoning_effort",
            $"reasoning_effort must be one of: {string.Join(", ", ChatPrompt.ReasoningEfforts)}.");
        var text = ChatPrompt.Render(serving, request.Messages, request.AddGenerationPrompt, request.ContinueFinalMessage,
            request.ChatTemplateKwargs, request.ChatTemplate, tools.TemplateTools, guardLength: keepLast is null, request.ReasoningEffort);
        var parser = serving.Options.ReasoningParser is { } name ? ReasoningParser.Create(name) : null;
        // a harmony function call stays in the content when the openai tool-call parser reads the answer
        var keepFunctionCalls = tools.Mode == ToolChoiceMode.Auto && serving.Options.ToolCallParser == HarmonyCallParser.Name;
        var reasoning = parser is null ? null : new ReasoningPart(parser, text, request.IncludeReasoning ?? true, keepFunctionCalls);
        Check.That(parser is not { ReadsSpecialTokens: true } || tools.Constraint is null, "tool_choice",
            $"A required or named tool_choice is not supported with --reasoning-parser {parser?.Name}: its calls are written in headers of their own; use tool_choice auto.");
        // an answer that starts in thinking meets its constraint once the thinking ends, as in vLLM
        if (parser is not null && fields.StructuredOutputs is { } constraint)
            fields = fields with
            {
                StructuredOutputs = parser.Constrain(constraint, text, header => serving.Prompts.Encode(header, addSpecialTokens: false, "messages")),
            };
        // The template writes the special tokens itself, so none are added (vLLM's default for chat).
        var ids = serving.Prompts.Encode(text, PromptEncoding.AddSpecialTokens(request.AddSpecialTokens, chat: true), "messages", keepLast);
        Check.That(ids.Count > 0, "messages", "The rendered conversation is empty.");
        var sampling = SamplingRules.ToSamplingParams(fields, ids.Count, limits, "messages");
        // harmony's channels are marked by special tokens: the text keeps them for the parser, which leaves them out
        if (parser is { ReadsSpecialTokens: true }) sampling = sampling with { SkipSpecialTokens = false };
        var generation = new GenerationRequest
        {
            RequestId = requestIds.Engine, PromptTokenIds = ids, Sampling = sampling, Priority = request.Priority ?? 0, LoraAdapter = model.LoraAdapter,
            CacheSalt = request.CacheSalt,
        };
        return new ChatPlan(requestIds.Response, ServingContext.UnixNow(), model, request, text, generation, tools, serving.Options.ToolCallParser, reasoning,
            AnswerRole(request, serving.Options.ResponseRole));
    }

    /// --response-role after a generation prompt; else the answer continues the final message, as that message's role
    /// (vLLM's rule). The messages were checked by the rendering.
    static string AnswerRole(ChatRequest request, string responseRole) =>
        request.AddGenerationPrompt ?? request.ContinueFinalMessage != true
            ? responseRole
            : request.Messages!.Value.EnumerateArray().Last().GetProperty("role").GetString()!;

    static void ValidateChatFields(ChatRequest request)
    {
        Check.InRange(request.MaxCompletionTokens, 1, int.MaxValue, "max_completion_tokens");
        // max_completion_tokens wins as the budget, but a bad max_tokens beside it is still refused.
        Check.InRange(request.MaxTokens, 1, int.MaxValue, "max_tokens");
    }

    public ChatChoiceState[] NewChoiceStates(ServingContext serving) =>
        [.. Enumerable.Range(0, N).Select(i => new ChatChoiceState(i, Role, Request.ReturnTokenIds == true,
            new LogprobTokens(serving.Prompts, Request.TokensAsTokenIds(serving.Options)),
            ToolCallReader.For(Tools, ToolCallParser is { } parser ? ToolCallParsers.Create(parser, Tools.TemplateTools) : null), Reasoning))];
}
