using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Serving.Engine.Execution;

namespace Serving.Engine;

/// The engine: one dedicated thread owns the model, the KV pool and the scheduler and runs
/// schedule -> execute -> postprocess while there is work. Callers talk to it through a command channel
/// (add, abort) and read their tokens from a per-request channel, so no lock guards engine state.
public sealed class LlmEngine : ILlmEngine
{
    readonly EngineOptions _options;
    readonly ILogger _logger;
    readonly Channel<EngineCommand> _commands = Channel.CreateUnbounded<EngineCommand>(new() { SingleReader = true });
    readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly Thread _thread;
    volatile EngineState _state = EngineState.Loading;
    volatile EngineStats _stats = new();
    volatile bool _stopRequested;
    /// Sequences admitted but not yet scheduled (a request with n counts n), against MaxNumQueuedRequests.
    int _numQueued;
    /// Beam searches under way: a drain waits for them as for running requests (between steps none of theirs runs).
    int _numBeamSearches;
    EngineSetup? _setup;
    /// The adapters served now: set at load, replaced on the engine thread after each change, read by any thread.
    volatile IReadOnlyList<Model.Lora.LoraAdapterSource> _loraAdapters = [];
    /// Adapters being read onto the device (their names), counted against --max-loras until served or failed.
    readonly HashSet<string> _loraLoads = [];

    /// Starts loading the model on the engine thread and returns at once; WaitUntilReadyAsync tells when it is up.
    public LlmEngine(EngineOptions options, ILoggerFactory? loggerFactory = null)
    {
        _options = options;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<LlmEngine>();
        _thread = new Thread(Run) { Name = "llm-engine", IsBackground = true };
        _thread.Start();
    }

    public EngineState State => _state;

    public ModelInfo Info => Setup.Info;

    public IPromptProcessor Prompts => Setup.Prompts;

    public IReadOnlyList<Model.Lora.LoraAdapterSource> LoraAdapters => _loraAdapters;

    /// Loads a PEFT adapter onto the device on the caller's thread, then serves it from the engine's next step.
    /// ModelLoadException when the folder cannot be applied; InvalidRequestException when the name is taken.
    public async Task LoadLoraAdapterAsync(Model.Lora.LoraAdapterSource source, CancellationToken cancellationToken)
    {
        if (_state != EngineState.Ready || _setup is null)
            throw new EngineUnavailableException($"the engine is {_state.ToString().ToLowerInvariant()}");
        // a slot is taken before the weights reach the device, so loads at once never hold more than --max-loras
        lock (_loraLoads)
        {
            if (_loraAdapters.Any(a => a.Name == source.Name) || _loraLoads.Contains(source.Name))
                throw new InvalidRequestException($"LoRA adapter '{source.Name}' is already loaded", "lora_name");
            if (_loraAdapters.Count + _loraLoads.Count >= _options.LoraCapacity)
                throw new InvalidRequestException(
                    $"{_options.LoraCapacity} LoRA adapters are loaded, the most at once (--max-loras); unload one first", "lora_name");
            _loraLoads.Add(source.Name);
        }
        try
        {
            var adapter = await Task.Run(() => _setup.Core.Model.LoadLoraAdapter(source, _options.MaxLoraRank), cancellationToken);
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_commands.Writer.TryWrite(new AddLoraAdapterCommand(adapter, done)))
            {
                adapter.Dispose();
                throw new EngineUnavailableException("the engine has stopped");
            }
            await done.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            lock (_loraLoads) _loraLoads.Remove(source.Name);
        }
    }

    /// Stops serving an adapter once the engine reaches its next step boundary. InvalidRequestException when no
    /// adapter has the name or a live request uses it.
    public async Task UnloadLoraAdapterAsync(string name, CancellationToken cancellationToken)
    {
        if (_state != EngineState.Ready || _setup is null)
            throw new EngineUnavailableException($"the engine is {_state.ToString().ToLowerInvariant()}");
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_commands.Writer.TryWrite(new RemoveLoraAdapterCommand(name, done))) throw new EngineUnavailableException("the engine has stopped");
        await done.Task.WaitAsync(cancellationToken);
    }

    /// Forgets every cached prefix at the engine's next step boundary (vLLM's /reset_prefix_cache); false while a request
    /// holds KV blocks, which keep their hashes then.
    public async Task<bool> ResetPrefixCacheAsync(CancellationToken cancellationToken)
    {
        if (_state != EngineState.Ready)
            throw new EngineUnavailableException($"the engine is {_state.ToString().ToLowerInvariant()}");
        var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_commands.Writer.TryWrite(new ResetPrefixCacheCommand(done))) throw new EngineUnavailableException("the engine has stopped");
        return await done.Task.WaitAsync(cancellationToken);
    }

    EngineSetup Setup => _setup ?? throw new EngineUnavailableException($"the engine is {_state.ToString().ToLowerInvariant()}");

    public Task WaitUntilReadyAsync(CancellationToken cancellationToken) => _ready.Task.WaitAsync(cancellationToken);

    public Task Completion => _stopped.Task;

    public EngineStats GetStats() => _stats;

    public IAsyncEnumerable<TokenEvent> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken) =>
        request.Sampling.BeamSearch is not null && request.Pooling is null
            ? SearchBeamsAsync(request, cancellationToken)
            : StreamAsync(request, searchStep: false, cancellationToken);

    /// A beam search (SamplingParams.BeamSearch): checked as a whole (the queue's bound included), then run as one-token
    /// requests per beam and step, which are admitted past the bound and while the engine drains, so a search that
    /// started finishes as a running request does.
    async IAsyncEnumerable<TokenEvent> SearchBeamsAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // counted first, so that a drain starting between the check and the first step waits for this search
        Interlocked.Increment(ref _numBeamSearches);
        try
        {
            var setup = CheckAccepting(searchStep: false);
            RequestValidation.Validate(request, setup.Info, _loraAdapters, _options.MaxNumQueuedRequests);
            // the queue's bound is met once, here, for all the search's beams: its steps are never refused for it midway
            if (Volatile.Read(ref _numQueued) + request.Sampling.N > _options.MaxNumQueuedRequests)
                throw new QueueFullException(
                    $"{_options.MaxNumQueuedRequests} sequences are already waiting (--max-num-queued-reqs); retry later");
            var search = new Sampling.BeamSearch((step, token) => StreamAsync(step, searchStep: true, token), setup.EosTokenIds, setup.Prompts);
            await foreach (var tokenEvent in search.RunAsync(request, cancellationToken))
                yield return tokenEvent;
        }
        finally
        {
            Interlocked.Decrement(ref _numBeamSearches);
        }
    }

    async IAsyncEnumerable<TokenEvent> StreamAsync(GenerationRequest request, bool searchStep,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var state = Admit(request, searchStep);
        using var abortOnCancel = cancellationToken.Register(
            () => _commands.Writer.TryWrite(new AbortRequestCommand(state)));
        var completed = false;
        try
        {
            await foreach (var tokenEvent in state.Output.Reader.ReadAllAsync(cancellationToken))
                yield return tokenEvent;
            completed = true;
        }
        finally
        {
            // the caller stopped reading early (or was cancelled): free the request's blocks
            if (!completed)
                _commands.Writer.TryWrite(new AbortRequestCommand(state));
        }
    }

    /// The setup while the engine takes requests: when ready, and while draining for a beam search's steps.
    EngineSetup CheckAccepting(bool searchStep)
    {
        if ((_state == EngineState.Ready || (searchStep && _state == EngineState.Draining)) && _setup is { } setup)
            return setup;
        throw new EngineUnavailableException($"the engine is {_state.ToString().ToLowerInvariant()} and accepts no requests");
    }

    /// Checks what can be checked off the engine thread and queues the request; throws before any event.
    RequestState Admit(GenerationRequest request, bool searchStep)
    {
        var setup = CheckAccepting(searchStep);
        // an embedding samples nothing: whatever sampling it carries is replaced, so nothing of it reaches the engine thread
        if (request.Pooling is not null) request = request with { Sampling = Sampling.SamplingParams.Greedy };
        RequestValidation.Validate(request, setup.Info, _loraAdapters, _options.MaxNumQueuedRequests);
        var n = request.Sampling.N;
        if (Interlocked.Add(ref _numQueued, n) > _options.MaxNumQueuedRequests && !searchStep)
        {
            Interlocked.Add(ref _numQueued, -n);
            throw new QueueFullException(
                $"{_options.MaxNumQueuedRequests} sequences are already waiting (--max-num-queued-reqs); retry later");
        }
        var state = new RequestState(request);
        if (!_commands.Writer.TryWrite(new AddRequestCommand(state)))
        {
            Interlocked.Add(ref _numQueued, -n);
            throw new EngineUnavailableException("the engine has stopped");
        }
        return state;
    }

    public async Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_state == EngineState.Ready)
            _state = EngineState.Draining;
        using var timer = new CancellationTokenSource(timeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timer.Token, cancellationToken);
        try
        {
            while (_state == EngineState.Draining && (_stats.RunningRequests > 0 || _stats.WaitingRequests > 0 || Volatile.Read(ref _numQueued) > 0
                   || Volatile.Read(ref _numBeamSearches) > 0))
                await Task.Delay(20, linked.Token);
        }
        catch (OperationCanceledException) when (timer.IsCancellationRequested)
        {
            // out of time: what is still running is aborted below
        }
        await StopAsync();
    }

    async Task StopAsync()
    {
        _stopRequested = true;
        _commands.Writer.TryWrite(new AbortAllCommand());
        await _stopped.Task;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
    }

    void Run()
    {
        try
        {
            _setup = EngineSetup.Create(_options, left => Interlocked.Add(ref _numQueued, -left.Sampling.N), _logger);
        }
        catch (Exception error)
        {
            Log.LoadFailed(_logger, _options.Model, error);
            _state = EngineState.Faulted;
            _ready.TrySetException(error);
            _stopped.TrySetResult();
            return;
        }
        _loraAdapters = [.. _setup.Core.Model.LoraAdapters.Select(a => a.Source)];
        using (_setup.Core)
        {
            RunLoop(_setup.Core);
            FailLeftoverCommands();
        }
        _stopped.TrySetResult();
    }

    /// Once the loop has ended nothing reads the channel: close it (later writes fail at once) and answer what is
    /// still in it, so no caller waits for ever and no loaded adapter's weights are left behind.
    void FailLeftoverCommands()
    {
        _commands.Writer.TryComplete();
        var stopped = new EngineUnavailableException("the engine has stopped");
        while (_commands.Reader.TryRead(out var command))
            switch (command)
            {
                case AddRequestCommand add:
                    Interlocked.Add(ref _numQueued, -add.Request.Request.Sampling.N);
                    add.Request.Fail(stopped);
                    break;
                case AddLoraAdapterCommand add:
                    add.Adapter.Dispose();
                    add.Done.TrySetException(stopped);
                    break;
                case RemoveLoraAdapterCommand remove:
                    remove.Done.TrySetException(stopped);
                    break;
                case ResetPrefixCacheCommand reset:
                    reset.Done.TrySetException(stopped);
                    break;
            }
    }

    void RunLoop(EngineCore core)
    {
        _state = EngineState.Ready;
        _stats = core.Stats();
        _ready.TrySetResult();
        try
        {
            while (!_stopRequested || core.NumLiveRequests > 0)
            {
                ApplyCommands(core, wait: !core.HasWork && !_stopRequested);
                if (core.HasWork)
                    core.Step();
                _stats = core.Stats();
            }
            _state = EngineState.Stopped;
        }
        catch (Exception error)
        {
            // a bug outside any one request: nothing can be trusted any more, so fail everyone and say so
            Log.LoopFailed(_logger, error);
            _state = EngineState.Faulted;
            core.FailAll(new EngineUnavailableException($"the engine loop failed: {error.Message}"));
        }
    }

    /// Applies an adapter change on the engine thread, republishes the served list, and tells the caller how it went.
    void ChangeLoraAdapters(TaskCompletionSource done, Action change, Action? onFailure = null)
    {
        try
        {
            change();
            _loraAdapters = [.. _setup!.Core.Model.LoraAdapters.Select(a => a.Source)];
            done.TrySetResult();
        }
        catch (Exception error) when (error is InvalidRequestException or InvalidOperationException)
        {
            onFailure?.Invoke();
            done.TrySetException(error is InvalidRequestException ? error : new InvalidRequestException(error.Message, "lora_name"));
        }
    }

    void ApplyCommands(EngineCore core, bool wait)
    {
        if (wait)
            _commands.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult();
        while (_commands.Reader.TryRead(out var command))
        {
            switch (command)
            {
                case AddRequestCommand add when _stopRequested:
                    Interlocked.Add(ref _numQueued, -add.Request.Request.Sampling.N);
                    add.Request.Fail(new EngineUnavailableException("the engine is shutting down"));
                    break;
                case AddRequestCommand add:
                    core.Add(add.Request);
                    break;
                case AbortRequestCommand abort:
                    core.Abort(abort.Request);
                    break;
                case AbortAllCommand:
                    core.AbortAll();
                    break;
                case AddLoraAdapterCommand add:
                    ChangeLoraAdapters(add.Done, () => core.AddLoraAdapter(add.Adapter), onFailure: add.Adapter.Dispose);
                    break;
                case RemoveLoraAdapterCommand remove:
                    ChangeLoraAdapters(remove.Done, () => core.RemoveLoraAdapter(remove.Name));
                    break;
                case ResetPrefixCacheCommand reset:
                    reset.Done.TrySetResult(core.ResetPrefixCache());
                    break;
            }
        }
    }
}
