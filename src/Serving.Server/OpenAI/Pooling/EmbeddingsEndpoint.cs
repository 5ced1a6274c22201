using Serving.Server.Generation;

namespace Serving.Server.OpenAI.Pooling;

/// POST /v1/embeddings (the pooling runner, --runner pooling): one engine request per input, run side by side, the
/// answer once every vector is ready. A client that goes away cancels them all, which frees their KV blocks.
internal static class EmbeddingsEndpoint
{
    public static async Task HandleAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        serving.EnsureRunner(Serving.Engine.Pooling.RunnerType.Pooling, "Embeddings");
        serving.EnsurePoolingTask(classify: false, "Embeddings");
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.EmbeddingRequest);
        var aborted = context.RequestAborted;
        var plan = await serving.PreparePromptsAsync(() => EmbeddingPlan.Create(request, serving), aborted);
        var observer = serving.Observer(Telemetry.ServerMetrics.EmbeddingsOperation);
        var (vectors, promptTokens) = await EmbeddingRun.RunAsync(serving, plan.Requests, observer, aborted);
        var data = vectors.Select((vector, i) => new EmbeddingItem(i, plan.Encode(vector))).ToList();
        var response = new EmbeddingResponse(plan.Id, plan.Created, plan.Model.Name, data, new EmbeddingUsage(promptTokens, promptTokens));
        await context.Response.WriteAsJsonAsync(response, OpenAIJsonContext.Default.EmbeddingResponse, cancellationToken: aborted);
    }
}
