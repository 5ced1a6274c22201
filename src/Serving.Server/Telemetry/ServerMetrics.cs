using System.Diagnostics.Metrics;
using Serving.Engine;

namespace Serving.Server.Telemetry;

/// Per-request metrics named after the OpenTelemetry GenAI semantic conventions (seconds, tokens), each
/// labelled with the API the request came through (protocol "http" or "grpc").
internal sealed class ServerMetrics
{
    public const string MeterName = "Serving.Server";
    public const string ProtocolTag = "protocol";

    readonly Histogram<double> _timeToFirstToken;
    readonly Histogram<double> _timePerOutputToken;
    readonly Histogram<double> _requestDuration;
    readonly Histogram<long> _tokenUsage;
    readonly Counter<long> _sequencesFinished;

    public ServerMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _timeToFirstToken = meter.CreateHistogram("gen_ai.server.time_to_first_token", "s",
            "Time from arrival to the first generated token.", advice: Buckets(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10));
        _timePerOutputToken = meter.CreateHistogram("gen_ai.server.time_per_output_token", "s",
            "Decode time per output token after the first.", advice: Buckets(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5));
        _requestDuration = meter.CreateHistogram("gen_ai.server.request.duration", "s",
            "Time from arrival to the last token.", advice: Buckets(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92));
        _tokenUsage = meter.CreateHistogram<long>("gen_ai.client.token.usage", "{token}",
            "Input and output tokens per request.", advice: new() { HistogramBucketBoundaries = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144] });
        _sequencesFinished = meter.CreateCounter<long>("serving.sequences.finished", "{sequence}",
            "Finished sequences by finish_reason (stop, length, abort, error).");
    }

    static InstrumentAdvice<double> Buckets(params double[] bounds) => new() { HistogramBucketBoundaries = bounds };

    /// The GenAI operation name of /v1/embeddings, /score, /rerank and gRPC Embed.
    public const string EmbeddingsOperation = "embeddings";
    /// The operation name of /classify (GenAI's conventions name none).
    public const string ClassifyOperation = "classify";

    public void RecordCompleted(string protocol, string operation, string model, RequestUsage usage, RequestTimings timings, int n)
    {
        var tags = Tags(protocol, operation, model);
        _requestDuration.Record(timings.Total.TotalSeconds, tags);
        _tokenUsage.Record(usage.PromptTokens, [.. tags, new("gen_ai.token.type", "input")]);
        if (operation is EmbeddingsOperation or ClassifyOperation) return;   // pooling generates no token
        _timeToFirstToken.Record(timings.TimeToFirstToken.TotalSeconds, tags);
        // n sequences decode side by side: per-sequence tokens after the first measure the step rate.
        var tokensAfterFirst = usage.CompletionTokens / Math.Max(1, n) - 1;
        if (tokensAfterFirst > 0)
            _timePerOutputToken.Record((timings.Total - timings.TimeToFirstToken).TotalSeconds / tokensAfterFirst, tags);
        _tokenUsage.Record(usage.CompletionTokens, [.. tags, new("gen_ai.token.type", "output")]);
    }

    public void RecordFailed(string protocol, string operation, string model, string errorType, TimeSpan elapsed)
    {
        _requestDuration.Record(elapsed.TotalSeconds, [.. Tags(protocol, operation, model), new("error.type", errorType)]);
    }

    public void RecordSequencesFinished(string protocol, string finishReason, int count) =>
        _sequencesFinished.Add(count, new KeyValuePair<string, object?>(ProtocolTag, protocol),
            new KeyValuePair<string, object?>("finish_reason", finishReason));

    static KeyValuePair<string, object?>[] Tags(string protocol, string operation, string model) =>
    [
        new(ProtocolTag, protocol),
        new("gen_ai.operation.name", operation),
        new("gen_ai.request.model", model),
        new("gen_ai.response.model", model),
    ];
}
