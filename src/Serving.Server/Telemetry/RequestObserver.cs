using Serving.Server.OpenAI;
using System.Diagnostics;
using Serving.Engine;

namespace Serving.Server.Telemetry;

/// Traces, metrics and logs of one API request's generations. protocol is the API it came through ("http"
/// or "grpc"), operation the GenAI operation name ("chat" or "text_completion"); text is logged only when
/// --enable-log-requests asks for it, each text cut to --max-log-len characters when that is set.
internal sealed class RequestObserver(ServerMetrics metrics, ILogger logger, string protocol, string operation, string model,
    bool logText, int? maxLogLength = null)
{
    public static readonly ActivitySource Source = new("Serving.Server");

    public GenerationTrace StartGeneration(GenerationRequest request)
    {
        var activity = Source.StartActivity($"{operation} {model}", ActivityKind.Internal);
        activity?.SetTag("gen_ai.operation.name", operation);
        activity?.SetTag(ServerMetrics.ProtocolTag, protocol);
        activity?.SetTag("gen_ai.request.model", model);
        activity?.SetTag("gen_ai.request.id", request.RequestId);
        if (request.Pooling is null)   // an embedding samples nothing
        {
            activity?.SetTag("gen_ai.request.max_tokens", request.Sampling.MaxTokens);
            activity?.SetTag("gen_ai.request.temperature", request.Sampling.Temperature);
            activity?.SetTag("gen_ai.request.choice.count", request.Sampling.N);
        }
        Log.GenerationStarted(logger, request.RequestId, request.PromptTokenIds.Count, request.Sampling.N, request.MaxNewTokens);
        return new GenerationTrace(this, request, activity);
    }

    public void LogText(string requestId, string prompt, string output)
    {
        if (logText) Log.RequestText(logger, requestId, LogEscape.Text(Cut(prompt)), LogEscape.Text(Cut(output)));
    }

    string Cut(string text) => maxLogLength is { } max && text.Length > max ? text[..max] : text;

    internal void Completed(GenerationRequest request, RequestUsage usage, RequestTimings timings, IReadOnlyList<string> reasons)
    {
        metrics.RecordCompleted(protocol, operation, model, usage, timings, request.Sampling.N);
        foreach (var group in reasons.GroupBy(r => r)) metrics.RecordSequencesFinished(protocol, group.Key, group.Count());
        Log.GenerationFinished(logger, request.RequestId, usage.PromptTokens, usage.CompletionTokens, usage.CachedPromptTokens,
            string.Join(",", reasons), timings.Queue.TotalMilliseconds, timings.TimeToFirstToken.TotalMilliseconds, timings.Total.TotalMilliseconds);
    }

    internal void Aborted(GenerationRequest request, TimeSpan elapsed)
    {
        metrics.RecordFailed(protocol, operation, model, "aborted", elapsed);
        metrics.RecordSequencesFinished(protocol, "abort", request.Sampling.N);
        Log.GenerationAborted(logger, request.RequestId);
    }

    internal void Failed(GenerationRequest request, Exception exception, TimeSpan elapsed)
    {
        metrics.RecordFailed(protocol, operation, model, exception.GetType().Name, elapsed);
        if (exception is not RequestFailedException)
        {
            // Refused at admission (invalid, queue full, unavailable): the API request's one rejection line says so.
            Log.GenerationRefused(logger, request.RequestId, exception.GetType().Name);
            return;
        }
        metrics.RecordSequencesFinished(protocol, "error", request.Sampling.N);
        Log.GenerationFailed(logger, request.RequestId, exception.GetType().Name, exception.Message);
    }
}

/// One engine request's span: queue, prefill and decode times as tags, usage and finish reasons at the end.
internal sealed class GenerationTrace(RequestObserver observer, GenerationRequest request, Activity? activity) : IDisposable
{
    readonly long _started = Stopwatch.GetTimestamp();
    readonly string[] _reasons = new string[request.Sampling.N];

    public void OnEvent(TokenEvent e)
    {
        if (e.FinishReason is { } reason && e.Index < _reasons.Length) _reasons[e.Index] = reason.ToOpenAI();
        if (e.Usage is not { } usage || e.Timings is not { } timings) return;
        activity?.SetTag("gen_ai.usage.input_tokens", usage.PromptTokens);
        activity?.SetTag("gen_ai.usage.output_tokens", usage.CompletionTokens);
        activity?.SetTag("serving.usage.cached_tokens", usage.CachedPromptTokens);
        activity?.SetTag("gen_ai.response.finish_reasons", _reasons);
        activity?.SetTag("serving.queue_time_s", timings.Queue.TotalSeconds);
        activity?.SetTag("serving.prefill_time_s", (timings.TimeToFirstToken - timings.Queue).TotalSeconds);
        activity?.SetTag("serving.decode_time_s", (timings.Total - timings.TimeToFirstToken).TotalSeconds);
        observer.Completed(request, usage, timings, [.. _reasons.Select(r => r ?? "abort")]);
    }

    public void OnAborted()
    {
        activity?.SetTag("gen_ai.response.finish_reasons", new[] { "abort" });
        observer.Aborted(request, Stopwatch.GetElapsedTime(_started));
    }

    public void OnFailure(Exception exception)
    {
        activity?.SetStatus(ActivityStatusCode.Error, exception.Message);
        activity?.SetTag("error.type", exception.GetType().Name);
        observer.Failed(request, exception, Stopwatch.GetElapsedTime(_started));
    }

    public void Dispose() => activity?.Dispose();
}
