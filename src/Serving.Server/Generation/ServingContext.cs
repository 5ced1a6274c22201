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
    public ILlmEngine Engine => engine;

    public IPromptProcessor Prompts => engine.Prompts;

    public ServerOptions Options => options;

    public string ModelName => options.ResolvedServedModelName;

    public RequestLimits Limits => RequestLimits.From(engine.Info, options);

    /// 503 unless the engine is ready and the server not draining; call before touching the engine.
    public void EnsureReady() => state.EnsureReady();

    /// "model" may be omitted (vLLM); otherwise it must be the served name, else 404.
    public void CheckModel(string? model)
    {
        if (model is not null && model != ModelName) throw ApiException.ModelNotFound(model);
    }

    /// protocol labels the request's metrics and span: "http" or "grpc".
    public RequestObserver Observer(string operation, string protocol = "http") =>
        new(metrics, logger, protocol, operation, ModelName, options.EnableLogRequests);

    public void LogStreamFailure(string requestId, Exception exception) => Log.StreamFailed(logger, requestId, exception);

    public static string NewId(string prefix) => $"{prefix}-{Guid.NewGuid():N}";

    public static long UnixNow() => DateTimeOffset.UtcNow.ToUnixTimeSeconds();
}
