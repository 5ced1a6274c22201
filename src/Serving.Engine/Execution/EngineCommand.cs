namespace Serving.Engine.Execution;

/// What callers post to the engine thread; the loop applies them between steps, so the scheduler and the
/// KV pool are only ever touched by that thread.
internal abstract record EngineCommand;

/// Queue a new request.
internal sealed record AddRequestCommand(RequestState Request) : EngineCommand;

/// Cancel a request in whatever state it is; its blocks are freed before the next step. Carries the request
/// itself, not its id, so a refused duplicate id can never abort the live request that owns it.
internal sealed record AbortRequestCommand(RequestState Request) : EngineCommand;

/// Abort everything still live (the end of a drain, or disposal).
internal sealed record AbortAllCommand : EngineCommand;

/// Serve a LoRA adapter already loaded onto the device (Done completes, or fails with why not).
internal sealed record AddLoraAdapterCommand(Model.Lora.LoraAdapter Adapter, TaskCompletionSource Done) : EngineCommand;

/// Forget every cached prefix; Done says whether it could (not while a request holds blocks).
internal sealed record ResetPrefixCacheCommand(TaskCompletionSource<bool> Done) : EngineCommand;

/// Stop serving a LoRA adapter and free its weights.
internal sealed record RemoveLoraAdapterCommand(string Name, TaskCompletionSource Done) : EngineCommand;
