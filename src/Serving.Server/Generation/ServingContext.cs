using Serving.Engine;
using Serving.Server.Engine;
using Serving.Server.Errors;
using Serving.Server.Options;
using Serving.Server.Telemetry;

namespace Serving.Server.Generation;

/// What the request handlers of both APIs (OpenAI HTTP and gRPC) share: the engine, the admission state,
/// limits, the served name and telemetry.
internal sealed class ServingContext(ILlmEngine engine, ServingState state, ServerOptions options, ServerMetrics metrics,
    ILogger<ServingContext> logger)
{
    /// Prompt preparations (templating, tokenizing) running at once: one core stays for the engine and the rest.
    readonly SemaphoreSlim _promptWork = new(Math.Max(1, Environment.ProcessorCount - 1));

    public ILlmEngine Engine => engine;

    public IPromptProcessor Prompts => engine.Prompts;

    public ServerOptions Options => options;

    /// The name responses carry (the first of ModelNames).
    public string ModelName => options.ResolvedServedModelName;

    /// Every name a request may give as "model".
    public IReadOnlyList<string> ModelNames => options.ServedModelNames;

    public RequestLimits Limits => RequestLimits.From(engine.Info, options);

    /// Runs a request's prompt preparation (templating, tokenizing: CPU work on the caller's thread) with a bounded
    /// number at once, so that a burst of large prompts waits its turn instead of starving every other request.
    public async Task<T> PreparePromptsAsync<T>(Func<T> prepare, CancellationToken cancellationToken)
    {
        await _promptWork.WaitAsync(cancellationToken);
        try
        {
            return prepare();
        }
        finally
        {
            _promptWork.Release();
        }
    }

    /// 503 unless the engine is ready and the server not draining; call before touching the engine.
    public void EnsureReady() => state.EnsureReady();

    /// 400 when the engine runs the other runner (--runner): the pooling runner serves embeddings only, the generate
    /// runner everything but; api names the refused API in the message.
    public void EnsureRunner(Serving.Engine.Pooling.RunnerType runner, string api)
    {
        if (engine.Info.Runner == runner) return;
        throw ApiException.BadRequest(runner == Serving.Engine.Pooling.RunnerType.Pooling
            ? $"The model does not support the {api} API: the server runs the generate runner (start it with --runner pooling to serve embeddings)."
            : $"The model does not support the {api} API: the server runs the pooling runner (--runner pooling), which serves /v1/embeddings.", "model");
    }

    /// 400 when the pooling runner's model does not serve the API: a sequence classifier answers /classify only, an
    /// embedding model everything but.
    public void EnsurePoolingTask(bool classify, string api)
    {
        var classifier = engine.Info.Labels.Count > 0;
        if (classifier == classify) return;
        throw ApiException.BadRequest(classifier
            ? $"The model does not support the {api} API: it is a sequence classifier, which answers POST /classify."
            : $"The model does not support the {api} API: it is an embedding model (POST /v1/embeddings, /score, /rerank), not a sequence classifier.", "model");
    }

    /// The model a request names: one of the served names (the model itself; omitted, as vLLM allows, it is too), or a
    /// LoRA adapter (--lora-modules); else 404.
    public ServedModel Resolve(string? model)
    {
        if (model is null || ModelNames.Contains(model)) return new ServedModel(ModelName, null);
        if (engine.LoraAdapters.Any(adapter => adapter.Name == model)) return new ServedModel(model, model);
        throw ApiException.ModelNotFound(model);
    }

    public void CheckModel(string? model) => Resolve(model);

    /// protocol labels the request's metrics and span: "http" or "grpc".
    public RequestObserver Observer(string operation, string protocol = "http") =>
        new(metrics, logger, protocol, operation, ModelName, options.EnableLogRequests, options.MaxLogLen);

    public void LogStreamFailure(string requestId, Exception exception) => Log.StreamFailed(logger, requestId, exception);

    /// Every name a request may give as "model" beside the served names: the LoRA adapters.
    public IReadOnlyList<Serving.Engine.Model.Lora.LoraAdapterSource> LoraAdapters => engine.LoraAdapters;

    public static string NewId(string prefix) => $"{prefix}-{Guid.NewGuid():N}";

    public static long UnixNow() => DateTimeOffset.UtcNow.ToUnixTimeSeconds();
}

/// What a request's "model" resolved to: the name its responses carry, and the LoRA adapter it runs with (null: the
/// model itself).
internal sealed record ServedModel(string Name, string? LoraAdapter);
