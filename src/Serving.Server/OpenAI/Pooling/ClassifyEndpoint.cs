using System.Text.Json;
using Serving.Engine;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI.Pooling;

/// vLLM's POST /classify (/v1/classify) on the pooling runner with a sequence classifier (*ForSequenceClassification):
/// each input's last-token logits of the `score` head through the activation vLLM picks from config.json's
/// problem_type (regression: none; multi_label_classification: a sigmoid per label; else a softmax, or a sigmoid for one
/// label; the request's use_activation false gives the raw logits), and the label scored highest.
internal static class ClassifyEndpoint
{
    public static void MapClassify(this IEndpointRouteBuilder app)
    {
        foreach (var path in new[] { "/classify", "/v1/classify" }) app.MapPost(path, ClassifyAsync);
    }

    internal static async Task ClassifyAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        serving.EnsureRunner(Serving.Engine.Pooling.RunnerType.Pooling, "Classification");
        serving.EnsurePoolingTask(classify: true, "Classification");
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.ClassifyRequest);
        var model = serving.Resolve(request.Model);
        var info = serving.Engine.Info;
        var limits = serving.Limits;
        var count = CompletionPrompts.Count(request.Input, "input");
        Check.That(count <= EmbeddingRun.MaxInputs, "input", $"The request lists {count} inputs; at most {EmbeddingRun.MaxInputs} are allowed.");
        var keepLast = PromptEncoding.KeepLast(request.TruncatePromptTokens, limits.MaxModelLen);
        var id = ServingContext.NewId("classify");
        var requests = await serving.PreparePromptsAsync(() =>
        {
            var prompts = CompletionPrompts.Resolve(request.Input, serving.Prompts, PromptEncoding.AddSpecialTokens(request.AddSpecialTokens, chat: false),
                keepLast, "input");
            foreach (var prompt in prompts) info.CheckPooledPrompt(prompt.TokenIds.Count, "input");
            return EmbeddingRun.Requests(id, [.. prompts.Select(p => p.TokenIds)], info.Pooler!.Params(), request.Priority ?? 0, model.LoraAdapter);
        }, context.RequestAborted);
        var observer = serving.Observer(Telemetry.ServerMetrics.ClassifyOperation);
        var (logits, tokens) = await EmbeddingRun.RunAsync(serving, requests, observer, context.RequestAborted);
        var activate = request.UseActivation ?? request.Activation ?? true;
        var data = logits.Select((row, i) =>
        {
            var probs = activate ? Activated(row, info.ProblemType) : [.. row.Select(l => (double)l)];
            var best = Array.IndexOf(probs, probs.Max());
            return new ClassifyItem(i, info.Labels[best], probs, probs.Length);
        }).ToList();
        await context.Response.WriteAsJsonAsync(new ClassifyResponse(id, ServingContext.UnixNow(), model.Name, data, new EmbeddingUsage(tokens, tokens)),
            OpenAIJsonContext.Default.ClassifyResponse, cancellationToken: context.RequestAborted);
    }

    /// vLLM's classify activation: none for regression, a sigmoid per label for multi-label classification or a single
    /// label, else a softmax.
    internal static double[] Activated(float[] logits, string? problemType)
    {
        if (problemType == "regression") return [.. logits.Select(l => (double)l)];
        if (problemType == "multi_label_classification" || logits.Length == 1) return [.. logits.Select(l => 1 / (1 + Math.Exp(-l)))];
        var max = logits.Max();
        var exps = logits.Select(l => Math.Exp(l - max)).ToArray();
        var sum = exps.Sum();
        return [.. exps.Select(e => e / sum)];
    }
}

/// vLLM's /classify body: the inputs as /v1/embeddings takes them.
internal sealed record ClassifyRequest
{
    public string? Model { get; init; }
    public JsonElement? Input { get; init; }
    public int? TruncatePromptTokens { get; init; }
    public bool? AddSpecialTokens { get; init; }
    public int? Priority { get; init; }
    /// vLLM's switch for the activation (its older name: activation); false returns the head's raw logits as probs.
    public bool? UseActivation { get; init; }
    public bool? Activation { get; init; }
}

internal sealed record ClassifyResponse(string Id, long Created, string Model, IReadOnlyList<ClassifyItem> Data, EmbeddingUsage Usage)
{
    public string Object => "list";
}

internal sealed record ClassifyItem(int Index, string Label, IReadOnlyList<double> Probs, int NumClasses);
