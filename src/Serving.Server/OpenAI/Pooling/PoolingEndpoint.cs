using Serving.Server.Generation;

namespace Serving.Server.OpenAI.Pooling;

/// vLLM's POST /pooling on the pooling runner: what the model's pooler gives for each input, in /v1/embeddings' body
/// and shape (`"object": "pooling"` items whose `data` is the result): an embedding model's vector, as /v1/embeddings
/// gives it; a sequence classifier's activated scores, as /classify's probs.
internal static class PoolingEndpoint
{
    public static void MapPooling(this IEndpointRouteBuilder app) => app.MapPost("/pooling", HandleAsync);

    static async Task HandleAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        serving.EnsureRunner(Serving.Engine.Pooling.RunnerType.Pooling, "Pooling");
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.EmbeddingRequest);
        var info = serving.Engine.Info;
        var classifier = info.Labels.Count > 0;
        if (classifier)
        {
            Check.That(request.Dimensions is null, "dimensions", "A sequence classifier's scores have no dimensions to choose.");
            Check.That(request.Normalize is null, "normalize", "A sequence classifier's scores are not normalized.");
        }
        var aborted = context.RequestAborted;
        var plan = await serving.PreparePromptsAsync(() => EmbeddingPlan.Create(request, serving), aborted);
        var observer = serving.Observer(classifier ? Telemetry.ServerMetrics.ClassifyOperation : Telemetry.ServerMetrics.EmbeddingsOperation);
        var (rows, promptTokens) = await EmbeddingRun.RunAsync(serving, plan.Requests, observer, aborted);
        var data = rows.Select((row, i) => new PoolingItem(i, plan.Encode(classifier
            ? [.. ClassifyEndpoint.Activated(row, info.ProblemType).Select(p => (float)p)]
            : row))).ToList();
        var response = new PoolingResponse(ServingContext.NewId("pool"), plan.Created, plan.Model.Name, data, new EmbeddingUsage(promptTokens, promptTokens));
        await context.Response.WriteAsJsonAsync(response, OpenAIJsonContext.Default.PoolingResponse, cancellationToken: aborted);
    }
}

/// vLLM's /pooling answer: one item per input, in input order.
internal sealed record PoolingResponse(string Id, long Created, string Model, IReadOnlyList<PoolingItem> Data, EmbeddingUsage Usage)
{
    public string Object => "list";
}

/// Data: float32 values, or (encoding_format base64) their bytes in base64 (VectorEncoding).
internal sealed record PoolingItem(int Index, object Data)
{
    public string Object => "pooling";
}
