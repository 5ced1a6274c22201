namespace Serving.Server;

/// Every log line of the server, source-generated. No prompt or output text except RequestText, which is
/// written only under --enable-log-requests.
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Loading model {Model} (served as {ServedModelName}) on {Device}")]
    public static partial void EngineLoading(ILogger logger, string model, string servedModelName, string device);

    [LoggerMessage(2, LogLevel.Information, "Engine ready: {Architecture}, {NumLayers} layers, max_model_len {MaxModelLen}, {NumKVBlocks} KV blocks of {BlockSize} tokens")]
    public static partial void EngineReady(ILogger logger, string architecture, int numLayers, int maxModelLen, int numKVBlocks, int blockSize);

    [LoggerMessage(3, LogLevel.Critical, "Engine failed to start: {Error}; exiting")]
    public static partial void EngineFailed(ILogger logger, string error);

    [LoggerMessage(4, LogLevel.Information, "Shutting down: refusing new requests, draining running ones for up to {TimeoutSeconds} s")]
    public static partial void Draining(ILogger logger, int timeoutSeconds);

    [LoggerMessage(5, LogLevel.Information, "Drained in {ElapsedMs:F0} ms")]
    public static partial void Drained(ILogger logger, double elapsedMs);

    [LoggerMessage(6, LogLevel.Error, "Draining the engine failed")]
    public static partial void DrainFailed(ILogger logger, Exception exception);

    [LoggerMessage(10, LogLevel.Debug, "Request {RequestId} queued: {PromptTokens} prompt tokens, n={N}, max_tokens={MaxTokens}")]
    public static partial void GenerationStarted(ILogger logger, string requestId, int promptTokens, int n, int maxTokens);

    [LoggerMessage(11, LogLevel.Information, "Request {RequestId} finished ({FinishReasons}): {PromptTokens} prompt ({CachedTokens} cached) + {CompletionTokens} completion tokens; queue {QueueMs:F1} ms, first token {TtftMs:F1} ms, total {TotalMs:F1} ms")]
    public static partial void GenerationFinished(ILogger logger, string requestId, int promptTokens, int completionTokens, int cachedTokens, string finishReasons, double queueMs, double ttftMs, double totalMs);

    [LoggerMessage(12, LogLevel.Information, "Request {RequestId} aborted (client gone or sibling failed)")]
    public static partial void GenerationAborted(ILogger logger, string requestId);

    [LoggerMessage(13, LogLevel.Warning, "Request {RequestId} failed: {ErrorType}: {Error}")]
    public static partial void GenerationFailed(ILogger logger, string requestId, string errorType, string error);

    [LoggerMessage(15, LogLevel.Debug, "Request {RequestId} refused by the engine ({ErrorType})")]
    public static partial void GenerationRefused(ILogger logger, string requestId, string errorType);

    [LoggerMessage(14, LogLevel.Information, "Request {RequestId} text: prompt={Prompt} output={Output}")]
    public static partial void RequestText(ILogger logger, string requestId, string prompt, string output);

    [LoggerMessage(20, LogLevel.Debug, "Request {TraceId}: client went away ({ExceptionType})")]
    public static partial void ClientWentAway(ILogger logger, string traceId, string exceptionType);

    [LoggerMessage(21, LogLevel.Information, "Request {TraceId} rejected with {Status} ({Code})")]
    public static partial void RequestRejected(ILogger logger, string traceId, int status, string code);

    [LoggerMessage(22, LogLevel.Error, "Request {TraceId} failed")]
    public static partial void RequestFailed(ILogger logger, string traceId, Exception exception);

    [LoggerMessage(23, LogLevel.Error, "Request {RequestId}: stream failed after it began; ending it with an error event")]
    public static partial void StreamFailed(ILogger logger, string requestId, Exception exception);

    [LoggerMessage(24, LogLevel.Warning, "Connection limit of {Max} reached (--max-connections): closed {Count} new connections since the last such line")]
    public static partial void ConnectionsShed(ILogger logger, long count, int max);

    [LoggerMessage(25, LogLevel.Information, "Serving at most {Max} connections (--max-connections; the file-descriptor limit is {DescriptorLimit}); idle connections close after {KeepAliveSeconds} s")]
    public static partial void ConnectionLimits(ILogger logger, int max, string descriptorLimit, int keepAliveSeconds);

    [LoggerMessage(27, LogLevel.Information, "Avg prompt throughput: {PromptThroughput:F1} tokens/s, Avg generation throughput: {GenerationThroughput:F1} tokens/s, Running: {Running} reqs, Waiting: {Waiting} reqs, KV cache usage: {KVUsagePercent:F1}%, Prefix cache hit rate: {PrefixHitPercent:F1}%")]
    public static partial void EngineStats(ILogger logger, double promptThroughput, double generationThroughput, int running, int waiting, double kvUsagePercent, double prefixHitPercent);

    [LoggerMessage(32, LogLevel.Information, "SpecDecoding metrics: Mean acceptance length: {MeanAcceptanceLength:F2}, Accepted: {Accepted} tokens, Drafted: {Drafted} tokens, Per-position acceptance rate: {PerPosition}, Avg Draft acceptance rate: {AcceptancePercent:F1}%")]
    public static partial void SpeculationStats(ILogger logger, double meanAcceptanceLength, long accepted, long drafted, string perPosition, double acceptancePercent);

    [LoggerMessage(26, LogLevel.Debug, "Idle after a burst: the GC's committed memory went from {BeforeMiB} MiB to {AfterMiB} MiB")]
    public static partial void MemoryTrimmed(ILogger logger, long beforeMiB, long afterMiB);

    [LoggerMessage(30, LogLevel.Information, "gRPC call {Method} rejected with {StatusCode} ({Code})")]
    public static partial void GrpcRejected(ILogger logger, string method, global::Grpc.Core.StatusCode statusCode, string code);

    [LoggerMessage(31, LogLevel.Error, "gRPC call {Method} failed")]
    public static partial void GrpcFailed(ILogger logger, string method, Exception exception);

    [LoggerMessage(34, LogLevel.Warning, "The following fields were present in the request but ignored: {Fields}")]
    public static partial void FieldsIgnored(ILogger logger, string fields);

    [LoggerMessage(33, LogLevel.Warning, "vLLM flags accepted with no effect here: {Flags}")]
    public static partial void FlagsWithoutEffect(ILogger logger, string flags);
}
