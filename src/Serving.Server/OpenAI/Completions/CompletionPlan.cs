using Serving.Engine;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI.Completions;

/// A checked /v1/completions request: its prompts, the engine request of each, and its choice states
/// (choice index = promptIndex * n + sequence index, as OpenAI numbers them).
/// Id is the response's; EngineId the engine's (a prompt's request adds its index when there are several).
internal sealed record CompletionPlan(string Id, string EngineId, long Created, ServedModel Model, CompletionRequest Request,
    IReadOnlyList<PromptInput> Prompts, IReadOnlyList<GenerationRequest> Requests, int N)
{
    /// echo with max_tokens 0: the engine generates one token, which the answer leaves out.
    public bool EchoOnly => Request.Echo == true && Request.MaxTokens == 0;

    /// requestIds: "cmpl-" and the client's id or a new one (ClientRequestId); a prompt's engine id adds its index.
    public static CompletionPlan Create(CompletionRequest request, ServingContext serving, RequestIds requestIds)
    {
        var model = serving.Resolve(request.Model);
        var limits = serving.Limits;
        ValidateCompletionFields(request, limits);
        var echoOnly = request.Echo == true && request.MaxTokens == 0;
        // echo with logprobs lists the prompt's tokens too: their log-probabilities come from the prefill (vLLM)
        var promptLogprobs = request.PromptLogprobs ?? (request.Echo == true ? request.Logprobs : null);
        var fields = SamplingMapper.Read(request, echoOnly ? 1 : request.MaxTokens, request.Logprobs, limits, promptLogprobs);
        var count = CompletionPrompts.Count(request.Prompt);
        Check.That(count <= limits.MaxPromptsPerRequest, "prompt",
            $"The request lists {count} prompts; at most {limits.MaxPromptsPerRequest} are allowed per request (--max-prompts-per-request).");
        SamplingRules.Sequences(count, fields.N, limits);
        var prompts = CompletionPrompts.Resolve(request.Prompt, serving.Prompts, PromptEncoding.AddSpecialTokens(request.AddSpecialTokens, chat: false),
            PromptEncoding.KeepLast(request.TruncatePromptTokens, limits.MaxModelLen));
        var requests = prompts.Select((prompt, i) => new GenerationRequest
        {
            RequestId = prompts.Count == 1 ? requestIds.Engine : $"{requestIds.Engine}-{i}",
            PromptTokenIds = prompt.TokenIds,
            Sampling = SamplingRules.ToSamplingParams(fields, prompt.TokenIds.Count, limits, "prompt"),
            Priority = request.Priority ?? 0,
            LoraAdapter = model.LoraAdapter,
            CacheSalt = request.CacheSalt,
        }).ToList();
        return new CompletionPlan(requestIds.Response, requestIds.Engine, ServingContext.UnixNow(), model, request, prompts, requests, request.N ?? 1);
    }

    static void ValidateCompletionFields(CompletionRequest request, RequestLimits limits)
    {
        Check.That(request.Suffix is null, "suffix", "suffix is not supported.");
        Check.InRange(request.Logprobs, 0, limits.MaxLogprobs, "logprobs");
        Check.That(request.BestOf is null || request.BestOf == (request.N ?? 1), "best_of",
            "best_of is not supported beyond n.");
    }

    public CompletionChoiceState[] NewChoiceStates(ServingContext serving)
    {
        var states = new CompletionChoiceState[Prompts.Count * N];
        var names = new LogprobTokens(serving.Prompts, Request.TokensAsTokenIds(serving.Options));
        for (var p = 0; p < Prompts.Count; p++)
        {
            var echo = Request.Echo == true
                ? new Echo(Prompts[p].Text ?? serving.Prompts.Decode(Prompts[p].TokenIds), Request.Logprobs is not null, EchoOnly)
                : null;
            for (var i = 0; i < N; i++)
                states[p * N + i] = new CompletionChoiceState(p * N + i, Prompts[p], echo, Request.ReturnTokenIds == true, serving.Prompts, names);
        }
        return states;
    }

    /// A prompt's usage as the answer reports it: an echo-only answer generated nothing.
    public RequestUsage? Usage(TokenEvent e) => EchoOnly && e.Usage is { } usage ? usage with { CompletionTokens = 0 } : e.Usage;
}
