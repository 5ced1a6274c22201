using System.Text.Json;
using Serving.Engine.Pooling;
using Serving.Server.Errors;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI;

/// SageMaker's POST /invocations (vLLM serves it): one route for every API, chosen by the body's fields as vLLM chooses
/// by which request type the body is, then answered by that API's own endpoint (same checks, errors and streaming).
internal static class InvocationsEndpoint
{
    public static void MapInvocations(this IEndpointRouteBuilder app) => app.MapPost("/invocations", InvokeAsync);

    static async Task InvokeAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        context.Request.EnableBuffering();
        var fields = await TopLevelFieldsAsync(context);
        context.Request.Body.Position = 0;
        await Route(fields, serving)(context, serving);
    }

    /// The API a body is for: messages (chat, or an embedding of a chat on the pooling runner), prompt (completions),
    /// query with documents (rerank), text_1 / data_1 / queries (score), input (embeddings, or classification by a
    /// sequence classifier).
    static Func<HttpContext, ServingContext, Task> Route(HashSet<string> fields, ServingContext serving)
    {
        var pooling = serving.Engine.Info.Runner == RunnerType.Pooling;
        var classifier = serving.Engine.Info.Labels.Count > 0;
        if (fields.Contains("messages"))
            return pooling ? Pooling.EmbeddingsEndpoint.HandleAsync : Chat.ChatEndpoint.HandleAsync;
        if (fields.Contains("prompt")) return Completions.CompletionsEndpoint.HandleAsync;
        if (fields.Contains("query") && fields.Contains("documents")) return Pooling.ScoreEndpoints.RerankAsync;
        if (fields.Contains("text_1") || fields.Contains("data_1") || fields.Contains("queries")) return Pooling.ScoreEndpoints.ScoreAsync;
        if (fields.Contains("input") && pooling)
            return classifier ? Pooling.ClassifyEndpoint.ClassifyAsync : Pooling.EmbeddingsEndpoint.HandleAsync;
        throw ApiException.BadRequest(pooling
            ? "An /invocations body names its API by its fields: input (embeddings or classification), messages (embeddings), query and documents (rerank), or text_1 and text_2 (score)."
            : "An /invocations body names its API by its fields: messages (chat completions) or prompt (completions).");
    }

    /// The names of the body's top-level fields; the body itself is read again by the endpoint.
    static async Task<HashSet<string>> TopLevelFieldsAsync(HttpContext context)
    {
        if (!context.Request.HasJsonContentType())
            throw new ApiException(StatusCodes.Status415UnsupportedMediaType, ErrorTypes.InvalidRequest,
                "The request body must be JSON, sent with Content-Type: application/json.", code: "unsupported_media_type");
        using var body = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
        if (body.RootElement.ValueKind != JsonValueKind.Object)
            throw ApiException.BadRequest("The request body must be a JSON object.");
        return [.. body.RootElement.EnumerateObject().Select(p => p.Name)];
    }
}
