namespace Serving.Engine;

/// The request is invalid (a parameter out of range, a prompt that does not fit). Servers answer 400 /
/// INVALID_ARGUMENT with Message and Param. Thrown by GenerateAsync before any event.
public sealed class InvalidRequestException(string message, string? param = null) : Exception(message)
{
    public string? Param { get; } = param;

    /// The prompt (with its max_tokens) does not fit the context: what a caller that may shorten the prompt
    /// (the Responses API's truncation "auto") tells apart from other refusals.
    public bool ExceedsContext { get; init; }
}

/// The waiting queue is full (--max-num-queued-reqs). Servers answer 429 / RESOURCE_EXHAUSTED.
public sealed class QueueFullException(string message) : Exception(message);

/// The engine does not accept work now (loading, draining, or its loop died). Servers answer 503 / UNAVAILABLE.
public sealed class EngineUnavailableException(string message) : Exception(message);

/// Serving this one request failed inside the engine (its sampling threw, say); other requests go on.
public sealed class RequestFailedException(string message, Exception? inner = null) : Exception(message, inner);
