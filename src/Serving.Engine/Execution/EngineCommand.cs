namespace Serving.Engine.Execution;

/// What callers post to the engine thread; the loop applies them between steps, so the scheduler and the
/// KV pool are only ever touched by that thread.
internal abstract record EngineCommand;

/// Queue a new request.
internal sealed record AddRequestCommand(RequestState Request) : EngineCommand;

/// Cancel a request in whatever state it is; its blocks are freed before the next step.
internal sealed record AbortRequestCommand(string RequestId) : EngineCommand;

/// Abort everything still live (the end of a drain, or disposal).
internal sealed record AbortAllCommand : EngineCommand;
