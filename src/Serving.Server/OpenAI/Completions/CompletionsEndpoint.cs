using Serving.Server.Errors;
using Serving.Server.Generation;
using Serving.Server.Streaming;

namespace Serving.Server.OpenAI.Completions;

/// POST /v1/completions: one engine request per prompt, answered whole or streamed as SSE chunks.
internal static class CompletionsEndpoint
{
    public static async Task HandleAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        serving.EnsureRunner(Serving.Engine.Pooling.RunnerType.Generate, "Completions");
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.CompletionRequest);
        var ids = ClientRequestId.Ids("cmpl", ClientRequestId.Of(context, request.RequestId));
        var plan = await serving.PreparePromptsAsync(() => CompletionPlan.Create(request, serving, ids), context.RequestAborted);
        var observer = serving.Observer("text_completion");
        var aborted = context.RequestAborted;
        await using var run = await GenerationRun.StartAsync(serving.Engine, plan.Requests, observer, aborted);
        var choices = plan.NewChoiceStates(serving);
        var usage = new UsageTotals();
        if (request.Stream == true) await StreamAsync(context, plan, run, choices, usage, serving);
        else await AnswerWholeAsync(context, plan, run, choices, usage, serving);
        LogText(observer, plan, choices);
    }

    static async Task AnswerWholeAsync(HttpContext context, CompletionPlan plan, GenerationRun run,
        CompletionChoiceState[] choices, UsageTotals usage, ServingContext serving)
    {
        var aborted = context.RequestAborted;
        await foreach (var item in run.ReadAllAsync(aborted))
        {
            choices[item.PromptIndex * plan.N + item.Event.Index].Record(item.Event);
            usage.Add(plan.Usage(item.Event));
        }
        var response = new CompletionResponse(plan.Id, plan.Created, plan.Model.Name,
            [.. choices.Select(c => c.ToChoice())], usage.ToUsage());
        await context.Response.WriteAsJsonAsync(response, OpenAIJsonContext.Default.CompletionResponse, cancellationToken: aborted);
    }

    static async Task StreamAsync(HttpContext context, CompletionPlan plan, GenerationRun run,
        CompletionChoiceState[] choices, UsageTotals usage, ServingContext serving)
    {
        var aborted = context.RequestAborted;
        var sse = new SseWriter(context.Response);
        await sse.StartAsync(aborted);
        try
        {
            var usageChunks = StreamOptions.UsageOf(plan.Request.StreamOptions, serving.Options.EnableForceIncludeUsage);
            var continuous = usageChunks.Continuous ? new ContinuousUsage(choices.Length) : null;
            await foreach (var item in run.ReadAllAsync(aborted))
            {
                var index = item.PromptIndex * plan.N + item.Event.Index;
                var choice = choices[index].Append(item.Event);
                usage.Add(plan.Usage(item.Event));
                var soFar = continuous?.After(index, plan.Prompts[item.PromptIndex].TokenIds.Count, item.Event);
                await sse.WriteAsync(Chunk(plan, serving, [choice], soFar), OpenAIJsonContext.Default.CompletionResponse, aborted);
            }
            if (usageChunks.Final)
                await sse.WriteAsync(Chunk(plan, serving, [], usage.ToUsage()), OpenAIJsonContext.Default.CompletionResponse, aborted);
        }
        catch (Exception exception) when (!aborted.IsCancellationRequested)
        {
            await StreamErrors.WriteAsync(sse, exception, plan.Id, serving, aborted);
        }
        await sse.WriteDoneAsync(aborted);
    }

    static CompletionResponse Chunk(CompletionPlan plan, ServingContext serving, IReadOnlyList<CompletionChoice> choices, Usage? usage) =>
        new(plan.Id, plan.Created, plan.Model.Name, choices, usage);

    static void LogText(Telemetry.RequestObserver observer, CompletionPlan plan, CompletionChoiceState[] choices) =>
        observer.LogText(plan.EngineId, string.Join(" | ", plan.Prompts.Select(p => p.Text ?? $"<{p.TokenIds.Count} token ids>")),
            string.Join(" | ", choices.Select(c => c.Text)));
}
