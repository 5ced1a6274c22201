using System.Text.Json;
using Serving.Engine;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI.Embeddings;

/// vLLM's scoring APIs on the pooling runner with an embedding model: POST /score (/v1/score) scores text pairs, POST
/// /rerank (/v1/rerank, /v2/rerank) orders documents by their score against a query. A pair's score is the cosine
/// similarity of the two texts' embeddings (vLLM's rule for embedding models; cross-encoders are not served). Each
/// distinct text is embedded once, all side by side.
internal static class ScoreEndpoints
{
    public static void MapScores(this IEndpointRouteBuilder app)
    {
        foreach (var path in new[] { "/score", "/v1/score" }) app.MapPost(path, ScoreAsync);
        foreach (var path in new[] { "/rerank", "/v1/rerank", "/v2/rerank" }) app.MapPost(path, RerankAsync);
    }

    static async Task ScoreAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        serving.EnsureRunner(Serving.Engine.Pooling.RunnerType.Pooling, "Score");
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.ScoreRequest);
        var model = serving.Resolve(request.Model);
        var (left, right) = (Texts(request.Text1, "text_1"), Texts(request.Text2, "text_2"));
        Check.That(left.Count == 1 || left.Count == right.Count, "text_1",
            $"text_1 must be one text or as many as text_2 ({left.Count} and {right.Count} given).");
        var pairs = right.Select((text, i) => (left[left.Count == 1 ? 0 : i], text)).ToList();
        var (scores, tokens) = await ScorePairsAsync(context, serving, model, pairs, request.TruncatePromptTokens, request.Priority);
        var data = scores.Select((score, i) => new ScoreItem(i, score)).ToList();
        await context.Response.WriteAsJsonAsync(new ScoreResponse(ServingContext.NewId("score"), ServingContext.UnixNow(), model.Name, data,
            new EmbeddingUsage(tokens, tokens)), OpenAIJsonContext.Default.ScoreResponse, cancellationToken: context.RequestAborted);
    }

    static async Task RerankAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        serving.EnsureRunner(Serving.Engine.Pooling.RunnerType.Pooling, "Rerank");
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.RerankRequest);
        var model = serving.Resolve(request.Model);
        Check.That(request.Query is not null, "query", "query is required.");
        var documents = Texts(request.Documents, "documents");
        Check.That(request.TopN is null or >= 0, "top_n", "top_n must be 0 (every document) or more.");
        var (scores, tokens) = await ScorePairsAsync(context, serving, model, documents.Select(d => (request.Query!, d)).ToList(),
            request.TruncatePromptTokens, request.Priority);
        var ranked = scores.Select((score, i) => new RerankResult(i, new RerankDocument(documents[i]), score))
            .OrderByDescending(result => result.RelevanceScore).ThenBy(result => result.Index).ToList();
        if (request.TopN is > 0 and var top) ranked = ranked.Take(top).ToList();
        await context.Response.WriteAsJsonAsync(new RerankResponse(ServingContext.NewId("rerank"), model.Name, new RerankUsage(tokens), ranked),
            OpenAIJsonContext.Default.RerankResponse, cancellationToken: context.RequestAborted);
    }

    /// The cosine similarity of each pair's embeddings, and the prompt tokens embedded (each distinct text once).
    static async Task<(double[] Scores, int PromptTokens)> ScorePairsAsync(HttpContext context, ServingContext serving, ServedModel model,
        IReadOnlyList<(string Left, string Right)> pairs, int? truncatePromptTokens, int? priority)
    {
        var limits = serving.Limits;
        var texts = pairs.SelectMany(pair => new[] { pair.Left, pair.Right }).Distinct().ToList();
        Check.That(texts.Count <= Math.Min(limits.MaxPromptsPerRequest, limits.MaxQueuedSeqs), "documents",
            $"The request has {texts.Count} distinct texts; at most {Math.Min(limits.MaxPromptsPerRequest, limits.MaxQueuedSeqs)} are allowed (--max-prompts-per-request, --max-num-queued-reqs).");
        var keepLast = PromptEncoding.KeepLast(truncatePromptTokens, limits.MaxModelLen);
        var pooling = serving.Engine.Info.Pooler!.Params();
        var id = ServingContext.NewId("score");
        var requests = await serving.PreparePromptsAsync(() => texts.Select((text, i) => new GenerationRequest
        {
            RequestId = $"{id}-{i}",
            PromptTokenIds = Tokens(serving, text, keepLast, limits.MaxModelLen),
            Pooling = pooling,
            Priority = priority ?? 0,
            LoraAdapter = model.LoraAdapter,
        }).ToList(), context.RequestAborted);
        var observer = serving.Observer(Telemetry.ServerMetrics.EmbeddingsOperation);
        var (vectors, tokens) = await EmbeddingRun.RunAsync(serving.Engine, requests, observer, context.RequestAborted);
        var byText = texts.Select((text, i) => (text, i)).ToDictionary(x => x.text, x => vectors[x.i]);
        return ([.. pairs.Select(pair => Cosine(byText[pair.Left], byText[pair.Right]))], tokens);
    }

    static IReadOnlyList<int> Tokens(ServingContext serving, string text, int? keepLast, int maxModelLen)
    {
        var ids = serving.Prompts.Encode(text, addSpecialTokens: true, "text", keepLast);
        Check.That(ids.Count > 0, "text", "A text must not be empty (it gives no tokens).");
        ContextLength.CheckPooled(ids.Count, maxModelLen, "text");
        return ids;
    }

    /// A string, or a non-empty list of strings (rerank's documents may also be {"text": ...} objects, as Cohere sends).
    static IReadOnlyList<string> Texts(JsonElement? field, string param)
    {
        Check.That(field is { ValueKind: not JsonValueKind.Null }, param, $"{param} is required.");
        var element = field!.Value;
        if (element.ValueKind == JsonValueKind.String) return [Check.Text(element, param)];
        Check.That(element.ValueKind == JsonValueKind.Array && element.GetArrayLength() > 0, param, $"{param} must be a string or a non-empty list of strings.");
        return [.. element.EnumerateArray().Select(item => item.ValueKind switch
        {
            JsonValueKind.String => Check.Text(item, param),
            JsonValueKind.Object when item.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String => Check.Text(text, param),
            _ => throw Errors.ApiException.BadRequest($"{param} must be a string or a non-empty list of strings.", param),
        })];
    }

    static double Cosine(float[] a, float[] b)
    {
        double dot = 0, aa = 0, bb = 0;
        for (var i = 0; i < a.Length; i++) (dot, aa, bb) = (dot + (double)a[i] * b[i], aa + (double)a[i] * a[i], bb + (double)b[i] * b[i]);
        return dot / Math.Max(Math.Sqrt(aa) * Math.Sqrt(bb), 1e-12);
    }
}
