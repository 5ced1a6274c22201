using System.Text.Json;
using Serving.Engine;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI.Pooling;

/// vLLM's scoring APIs on the pooling runner: POST /score (/v1/score) scores text pairs, POST /rerank (/v1/rerank,
/// /v2/rerank) orders documents by their score against a query. vLLM's two rules: with an embedding model a pair's score
/// is the cosine similarity of the two texts' embeddings (each distinct text embedded once); with a cross-encoder (a
/// sequence classifier of one label) it is the classifier's activated logit for the pair's tokens, the two texts
/// encoded one after the other as a tokenizer encodes a pair. All side by side.
internal static class ScoreEndpoints
{
    public static void MapScores(this IEndpointRouteBuilder app)
    {
        foreach (var path in new[] { "/score", "/v1/score" }) app.MapPost(path, ScoreAsync);
        foreach (var path in new[] { "/rerank", "/v1/rerank", "/v2/rerank" }) app.MapPost(path, RerankAsync);
    }

    internal static async Task ScoreAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        serving.EnsureRunner(Serving.Engine.Pooling.RunnerType.Pooling, "Score");
        EnsureScores(serving, "Score");
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

    internal static async Task RerankAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        serving.EnsureRunner(Serving.Engine.Pooling.RunnerType.Pooling, "Rerank");
        EnsureScores(serving, "Rerank");
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.RerankRequest);
        var model = serving.Resolve(request.Model);
        Check.That(request.Query is not null, "query", "query is required.");
        var query = new Text(request.Query!, "query");
        Check.That(request.Documents is null or { ValueKind: JsonValueKind.Array or JsonValueKind.Null }, "documents",
            "documents must be a list of strings or of {\"text\": ...} objects.");
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

    /// An embedding model or a cross-encoder (one label) scores pairs; a classifier of several labels does not.
    static void EnsureScores(ServingContext serving, string api)
    {
        if (serving.Engine.Info.Labels.Count is 0 or 1) return;
        throw Errors.ApiException.BadRequest($"The model does not support the {api} API: it is a classifier of {serving.Engine.Info.Labels.Count} " +
            "labels, which answers POST /classify (a cross-encoder has one label).", "model");
    }

    /// A text of the request and the field it came from (text_1, documents[2], ...), which its refusals name.
    readonly record struct Text(string Value, string Field);

    /// The cosine similarity of each pair's embeddings, and the usage as vLLM counts it: each pair's tokens (a text is
    /// embedded once however many pairs it is in).
    static async Task<(double[] Scores, int PromptTokens)> ScorePairsAsync(HttpContext context, ServingContext serving, ServedModel model,
        IReadOnlyList<(Text Left, Text Right)> pairs, int? truncatePromptTokens, int? priority)
    {
        if (serving.Engine.Info.Labels.Count == 1)
            return await CrossEncodeAsync(context, serving, model, pairs, truncatePromptTokens, priority);
        var limits = serving.Limits;
        var texts = pairs.SelectMany(pair => new[] { pair.Left, pair.Right }).DistinctBy(text => text.Value).ToList();
        Check.That(texts.Count <= EmbeddingRun.MaxInputs, pairs[0].Right.Field.Split('[')[0],
            $"The request has {texts.Count} distinct texts; at most {EmbeddingRun.MaxInputs} are allowed.");
        var keepLast = PromptEncoding.KeepLast(truncatePromptTokens, limits.MaxModelLen);
        var pooling = serving.Engine.Info.Pooler!.Params();
        var id = ServingContext.NewId("score");
        var requests = await serving.PreparePromptsAsync(() => EmbeddingRun.Requests(id, [.. texts.Select(text => Tokens(serving, text, keepLast))],
            pooling, priority ?? 0, model.LoraAdapter), context.RequestAborted);
        var observer = serving.Observer(Telemetry.ServerMetrics.EmbeddingsOperation);
        var (vectors, _) = await EmbeddingRun.RunAsync(serving, requests, observer, context.RequestAborted);
        var index = texts.Select((text, i) => (text.Value, i)).ToDictionary(x => x.Value, x => x.i);
        var scores = pairs.Select(pair => Cosine(vectors[index[pair.Left.Value]], vectors[index[pair.Right.Value]])).ToArray();
        var tokens = pairs.Sum(pair => requests[index[pair.Left.Value]].PromptTokenIds.Count + requests[index[pair.Right.Value]].PromptTokenIds.Count);
        return (scores, tokens);
    }

    /// A cross-encoder's score of each pair, as vLLM scores it: its one logit for the pair's tokens (the two texts joined
    /// into one when the model says so, an LLM as reranker; else the first text with the tokenizer's special tokens,
    /// then the second with its own, as a Hugging Face tokenizer encodes a pair of these families), through a sigmoid
    /// unless the model names an Identity activation; usage is the pairs' tokens.
    static async Task<(double[] Scores, int PromptTokens)> CrossEncodeAsync(HttpContext context, ServingContext serving, ServedModel model,
        IReadOnlyList<(Text Left, Text Right)> pairs, int? truncatePromptTokens, int? priority)
    {
        Check.That(pairs.Count <= EmbeddingRun.MaxInputs, pairs[0].Right.Field.Split('[')[0],
            $"The request has {pairs.Count} pairs; at most {EmbeddingRun.MaxInputs} are allowed.");
        var info = serving.Engine.Info;
        var keepLast = PromptEncoding.KeepLast(truncatePromptTokens, serving.Limits.MaxModelLen);
        var id = ServingContext.NewId("score");
        var requests = await serving.PreparePromptsAsync(() => EmbeddingRun.Requests(id, [.. pairs.Select(pair =>
        {
            IReadOnlyList<int> ids = info.JoinsScorePairs
                ? serving.Prompts.Encode(pair.Left.Value + pair.Right.Value, addSpecialTokens: true, pair.Right.Field)
                : [.. serving.Prompts.Encode(pair.Left.Value, addSpecialTokens: true, pair.Left.Field),
                    .. serving.Prompts.Encode(pair.Right.Value, addSpecialTokens: true, pair.Right.Field)];
            Check.That(ids.Count > 0, pair.Right.Field, $"{pair.Right.Field} and {pair.Left.Field} give no tokens.");
            // vLLM truncates a pair longest-first; here a pair must fit the truncation (-1: the context) as it is
            Check.That(keepLast is null || ids.Count <= keepLast, "truncate_prompt_tokens",
                $"The pair of {pair.Left.Field} and {pair.Right.Field} has {ids.Count} tokens, more than truncate_prompt_tokens {keepLast}; " +
                "a cross-encoder's pairs are not truncated.");
            info.CheckPooledPrompt(ids.Count, pair.Right.Field);
            return ids;
        })], info.Pooler!.Params(), priority ?? 0, model.LoraAdapter), context.RequestAborted);
        var observer = serving.Observer(Telemetry.ServerMetrics.ClassifyOperation);
        var (logits, tokens) = await EmbeddingRun.RunAsync(serving, requests, observer, context.RequestAborted);
        return ([.. logits.Select(row => info.ScoreActivationIsIdentity ? row[0] : 1 / (1 + Math.Exp(-row[0])))], tokens);
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
