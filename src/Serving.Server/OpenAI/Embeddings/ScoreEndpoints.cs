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
        serving.EnsurePoolingTask(classify: false, "Score");
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.ScoreRequest);
        var model = serving.Resolve(request.Model);
        var (leftField, leftName, rightField, rightName) = request.Sides();
        var (left, right) = (Texts(leftField, leftName), Texts(rightField, rightName));
        Check.That(left.Count == 1 || left.Count == right.Count, leftName,
            $"{leftName} must be one text or as many as {rightName} ({left.Count} and {right.Count} given).");
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
        serving.EnsurePoolingTask(classify: false, "Rerank");
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.RerankRequest);
        var model = serving.Resolve(request.Model);
        Check.That(request.Query is not null, "query", "query is required.");
        var query = new Text(request.Query!, "query");
        var documents = Texts(request.Documents, "documents");
        var (scores, tokens) = await ScorePairsAsync(context, serving, model, documents.Select(d => (query, d)).ToList(),
            request.TruncatePromptTokens, request.Priority);
        var ranked = scores.Select((score, i) => new RerankResult(i, new RerankDocument(documents[i].Value), score))
            .OrderByDescending(result => result.RelevanceScore).ThenBy(result => result.Index).ToList();
        // vLLM: top_n of 0 or less (or none) returns every document
        if (request.TopN is > 0 and var top) ranked = ranked.Take(top).ToList();
        await context.Response.WriteAsJsonAsync(new RerankResponse(ServingContext.NewId("rerank"), model.Name, new RerankUsage(tokens, tokens), ranked),
            OpenAIJsonContext.Default.RerankResponse, cancellationToken: context.RequestAborted);
    }

    /// A text of the request and the field it came from (text_1, documents[2], ...), which its refusals name.
    readonly record struct Text(string Value, string Field);

    /// The cosine similarity of each pair's embeddings, and the usage as vLLM counts it: each pair's tokens (a text is
    /// embedded once however many pairs it is in).
    static async Task<(double[] Scores, int PromptTokens)> ScorePairsAsync(HttpContext context, ServingContext serving, ServedModel model,
        IReadOnlyList<(Text Left, Text Right)> pairs, int? truncatePromptTokens, int? priority)
    {
        var limits = serving.Limits;
        var texts = pairs.SelectMany(pair => new[] { pair.Left, pair.Right }).DistinctBy(text => text.Value).ToList();
        Check.That(texts.Count <= EmbeddingRun.MaxInputs, pairs[0].Right.Field.Split('[')[0],
            $"The request has {texts.Count} distinct texts; at most {EmbeddingRun.MaxInputs} are allowed.");
        var keepLast = PromptEncoding.KeepLast(truncatePromptTokens, limits.MaxModelLen);
        var pooling = serving.Engine.Info.Pooler!.Params();
        var id = ServingContext.NewId("score");
        var requests = await serving.PreparePromptsAsync(() => texts.Select((text, i) => new GenerationRequest
        {
            RequestId = $"{id}-{i}",
            PromptTokenIds = Tokens(serving, text, keepLast),
            Pooling = pooling,
            Priority = priority ?? 0,
            LoraAdapter = model.LoraAdapter,
        }).ToList(), context.RequestAborted);
        var observer = serving.Observer(Telemetry.ServerMetrics.EmbeddingsOperation);
        var (vectors, _) = await EmbeddingRun.RunAsync(serving.Engine, requests, observer, EmbeddingRun.WaveSize(limits), context.RequestAborted);
        var index = texts.Select((text, i) => (text.Value, i)).ToDictionary(x => x.Value, x => x.i);
        var scores = pairs.Select(pair => Cosine(vectors[index[pair.Left.Value]], vectors[index[pair.Right.Value]])).ToArray();
        var tokens = pairs.Sum(pair => requests[index[pair.Left.Value]].PromptTokenIds.Count + requests[index[pair.Right.Value]].PromptTokenIds.Count);
        return (scores, tokens);
    }

    static IReadOnlyList<int> Tokens(ServingContext serving, Text text, int? keepLast)
    {
        var ids = serving.Prompts.Encode(text.Value, addSpecialTokens: true, text.Field, keepLast);
        Check.That(ids.Count > 0, text.Field, $"{text.Field} must not be empty (it gives no tokens).");
        serving.Engine.Info.CheckPooledPrompt(ids.Count, text.Field);
        return ids;
    }

    /// A string, or a non-empty list of strings (rerank's documents may also be {"text": ...} objects, as Cohere sends);
    /// each named by its place (documents[2]) for its refusals.
    static IReadOnlyList<Text> Texts(JsonElement? field, string param)
    {
        Check.That(field is { ValueKind: not JsonValueKind.Null }, param, $"{param} is required.");
        var element = field!.Value;
        if (element.ValueKind == JsonValueKind.String) return [new Text(Check.Text(element, param), param)];
        Check.That(element.ValueKind == JsonValueKind.Array && element.GetArrayLength() > 0, param, $"{param} must be a string or a non-empty list of strings.");
        return [.. element.EnumerateArray().Select((item, i) => item.ValueKind switch
        {
            JsonValueKind.String => new Text(Check.Text(item, $"{param}[{i}]"), $"{param}[{i}]"),
            JsonValueKind.Object when item.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String =>
                new Text(Check.Text(text, $"{param}[{i}]"), $"{param}[{i}]"),
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
