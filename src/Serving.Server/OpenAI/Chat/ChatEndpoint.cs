using Serving.Engine;
using Serving.Server.Generation;
using Serving.Server.Streaming;

namespace Serving.Server.OpenAI.Chat;

/// POST /v1/chat/completions: the conversation through the chat template, answered whole or streamed.
internal static class ChatEndpoint
{
    public static async Task HandleAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        serving.EnsureRunner(Serving.Engine.Pooling.RunnerType.Generate, "Chat Completions");
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.ChatRequest);
        var ids = ClientRequestId.Ids("chatcmpl", ClientRequestId.Of(context, request.RequestId));
        var plan = await serving.PreparePromptsAsync(() => ChatPlan.Create(request, serving, ids), context.RequestAborted);
        var observer = serving.Observer("chat");
        var aborted = context.RequestAborted;
        await using var run = await GenerationRun.StartAsync(serving.Engine, [plan.Generation], observer, aborted);
        var choices = plan.NewChoiceStates(serving);
        var usage = new UsageTotals();
        if (request.Stream == true) await StreamAsync(context, plan, run, choices, usage, serving);
        else await AnswerWholeAsync(context, plan, run, choices, usage, serving);
        observer.LogText(plan.Generation.RequestId, plan.PromptText, string.Join(" | ", choices.Select(c => c.Text)));
    }

    static async Task AnswerWholeAsync(HttpContext context, ChatPlan plan, GenerationRun run, ChatChoiceState[] choices,
        UsageTotals usage, ServingContext serving)
    {
        var aborted = context.RequestAborted;
        IReadOnlyList<TokenLogprob?>? promptLogprobs = null;
        await foreach (var item in run.ReadAllAsync(aborted))
        {
            choices[item.Event.Index].Record(item.Event);
            usage.Add(item.Event.Usage);
            promptLogprobs ??= item.Event.PromptLogprobs;
        }
        var response = new ChatResponse(plan.Id, plan.Created, plan.Model.Name, [.. choices.Select(c => c.ToChoice())], usage.ToUsage())
        {
            PromptTokenIds = plan.Request.ReturnTokenIds == true ? plan.Generation.PromptTokenIds : null,
            PromptLogprobs = promptLogprobs is null ? null : LogprobsFormat.Prompt(promptLogprobs, serving.Prompts),
        };
        await context.Response.WriteAsJsonAsync(response, OpenAIJsonContext.Default.ChatResponse, cancellationToken: aborted);
    }

    static async Task StreamAsync(HttpContext context, ChatPlan plan, GenerationRun run, ChatChoiceState[] choices,
        UsageTotals usage, ServingContext serving)
    {
        var aborted = context.RequestAborted;
        var sse = new SseWriter(context.Response);
        await sse.StartAsync(aborted);
        try
        {
            var opening = Chunk(plan, serving, [.. choices.Select(c => c.RoleDelta())], null) with
            {
                PromptTokenIds = plan.Request.ReturnTokenIds == true ? plan.Generation.PromptTokenIds : null,
            };
            await sse.WriteAsync(opening, OpenAIJsonContext.Default.ChatChunk, aborted);
            var usageChunks = StreamOptions.UsageOf(plan.Request.StreamOptions, serving.Options.EnableForceIncludeUsage);
            var continuous = usageChunks.Continuous ? new ContinuousUsage(choices.Length) : null;
            await foreach (var item in run.ReadAllAsync(aborted))
            {
                var choice = choices[item.Event.Index].Append(item.Event);
                usage.Add(item.Event.Usage);
                var soFar = continuous?.After(item.Event.Index, plan.Generation.PromptTokenIds.Count, item.Event);
                if (choice.IsEmpty) continue;
                await sse.WriteAsync(Chunk(plan, serving, [choice], soFar), OpenAIJsonContext.Default.ChatChunk, aborted);
            }
            if (usageChunks.Final)
                await sse.WriteAsync(Chunk(plan, serving, [], usage.ToUsage()), OpenAIJsonContext.Default.ChatChunk, aborted);
        }
        catch (Exception exception) when (!aborted.IsCancellationRequested)
        {
            await StreamErrors.WriteAsync(sse, exception, plan.Id, serving, aborted);
        }
        await sse.WriteDoneAsync(aborted);
    }

    static ChatChunk Chunk(ChatPlan plan, ServingContext serving, IReadOnlyList<ChatChunkChoice> choices, Usage? usage) =>
        new(plan.Id, plan.Created, plan.Model.Name, choices, usage);
}
