using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Serving.Engine.Grammar;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using Serving.Engine.Tokenization;
using static TorchSharp.torch;

namespace Serving.Engine.Execution;

/// The engine's state and its step, owned by the engine thread alone: the model runner (model + KV pool),
/// the scheduler (block bookkeeping + queues), the sampler, and the live requests. One step is
///
///     batch  = scheduler.Schedule()            who computes how many tokens now
///     tokens = sampler(runner.Run(batch))      one forward over the flat batch, one batched sample (and the
///                                              hidden rows embedding requests pool)
///     scheduler.Postprocess(batch, tokens)     append, stop rules, free finished blocks
///     + text: detokenize, stop strings, events to each request's channel; embeddings' vectors
internal sealed partial class EngineCore : IDisposable
{
    readonly ModelRunner _runner;
    readonly Scheduler _scheduler;
    readonly TextTokenizer _tokenizer;
    readonly TokenVocabulary _vocabulary;
    readonly IReadOnlyCollection<int> _eosTokenIds;
    /// Called once per request when it stops waiting (scheduled, refused, failed or aborted first).
    readonly Action<GenerationRequest> _requestLeftQueue;
    readonly ILogger _logger;
    readonly Sampler _sampler = new();
    readonly Dictionary<string, RequestState> _requests = new();
    /// The checkpoint's sentence-transformers Dense modules, run on finished embeddings; null: none.
    readonly Pooling.DenseProjections? _dense;
    long _steps;
    long _promptTokens;
    TimeSpan _lastStepDuration, _schedulingTime, _executionTime, _postprocessingTime;

    public EngineCore(ModelRunner runner, Scheduler scheduler, TextTokenizer tokenizer, TokenVocabulary vocabulary,
        IReadOnlyCollection<int> eosTokenIds, Action<GenerationRequest> requestLeftQueue, ILogger logger,
        Pooling.DenseProjections? dense = null)
    {
        (_runner, _scheduler, _tokenizer, _vocabulary, _eosTokenIds) = (runner, scheduler, tokenizer, vocabulary, eosTokenIds);
        (_requestLeftQueue, _logger, _dense) = (requestLeftQueue, logger, dense);
    }

    public bool HasWork => _scheduler.HasUnfinishedSequences;

    public int NumLiveRequests => _requests.Count;

    public Model.LoadedModel Model => _runner.Model;

    /// Admits a request (or fails it with the scheduler's reason) and sets up its sequences' text state.
    public void Add(RequestState request)
    {
        IReadOnlyList<Sequence> sequences;
        try
        {
            // checked again here: the adapter may have been unloaded since the request was validated
            string? adapterKey = null;
            if (request.Request.LoraAdapter is { } adapter)
                adapterKey = _runner.Model.LoraAdapters.FirstOrDefault(a => a.Name == adapter)?.Key
                    ?? throw new InvalidRequestException($"LoRA adapter '{adapter}' is not loaded", "model");
            sequences = _scheduler.Add(request.Request, adapterKey);
        }
        catch (InvalidRequestException error)
        {
            _requestLeftQueue(request.Request);
            request.Fail(error);
            return;
        }
        try
        {
            request.Start(sequences.Select(NewSequenceText(request.Request.Sampling)).ToList());
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            // the request alone fails (it was validated, so this is a bug), not the loop
            _scheduler.Abort(request.RequestId);
            _requestLeftQueue(request.Request);
            request.Fail(error is InvalidRequestException ? error : new RequestFailedException($"admitting request '{request.RequestId}' failed: {error.Message}", error));
            return;
        }
        _requests.Add(request.RequestId, request);
    }

    /// A sequence's text-side state: its sampling state (grammar compiled and cached when the request was validated on
    /// the caller's thread: a cache hit here), detokenizer and stop-string matcher.
    Func<Sequence, SequenceText> NewSequenceText(SamplingParams sampling)
    {
        var grammar = sampling.StructuredOutputs is { } spec ? GrammarCompiler.Compile(spec) : null;
        var badWords = BadWordTokens.Of(sampling.BadWords, _tokenizer);
        return sequence => new SequenceText(
            new SamplingState(sampling, sequence.PromptTokenIds, sequence.OutputTokenIds, _eosTokenIds, sequence.Index,
                grammar is null ? null : new GrammarState(grammar, _vocabulary, sampling.StructuredOutputs!.AfterTokens), badWords),
            _tokenizer.CreateDetokenizer(sequence.PromptTokenIds, sampling.SkipSpecialTokens),
            new StopStringMatcher(sampling.Stop, sampling.IncludeStopStringInOutput));
    }

    /// Serves a loaded LoRA adapter from the next step on.
    public void AddLoraAdapter(Model.Lora.LoraAdapter adapter) => _runner.Model.AddLoraAdapter(adapter);

    /// BlockPool.ResetPrefixCache on this engine's pool (every rank's pool follows rank 0's block tables).
    public bool ResetPrefixCache() => _scheduler.KVCache.Pool.ResetPrefixCache();

    /// Stops serving a LoRA adapter. InvalidRequestException while a live request uses it (or when none has the name).
    public void RemoveLoraAdapter(string name)
    {
        var users = _requests.Values.Count(request => request.Request.LoraAdapter == name);
        if (users > 0) throw new InvalidRequestException($"LoRA adapter '{name}' is in use by {users} request(s); unload it when they are done", "lora_name");
        if (!_runner.Model.RemoveLoraAdapter(name)) throw new InvalidRequestException($"LoRA adapter '{name}' is not loaded", "lora_name");
    }

    /// Cancels a request in any state; its blocks are free when this returns. A request that is not live
    /// (finished, refused, or a different request under the same id) is left alone.
    public void Abort(RequestState request)
    {
        if (!_requests.TryGetValue(request.RequestId, out var live) || live != request)
            return;
        foreach (var sequence in _scheduler.Abort(request.RequestId))
            EmitFinished(request, sequence.Index, [], "", null, FinishReason.Abort, null);
    }

    public void AbortAll()
    {
        foreach (var request in _requests.Values.ToList())
            Abort(request);
    }

    /// Fails every live request (the loop is going down).
    public void FailAll(Exception error)
    {
        foreach (var request in _requests.Values)
        {
            _scheduler.Abort(request.RequestId);
            request.Fail(error);
        }
        _requests.Clear();
    }

    /// schedule -> execute -> postprocess.
    public void Step()
    {
        var started = Stopwatch.GetTimestamp();
        var batch = _scheduler.Schedule();
        if (batch.IsEmpty)
            return;
        MarkScheduled(batch);
        var scheduled = Stopwatch.GetTimestamp();
        var calibrating = _runner.Cache.CalibrateScales;
        var sampled = Execute(batch);
        if (calibrating) ReportCalibratedScales();
        var executed = Stopwatch.GetTimestamp();
        var outputs = _scheduler.Postprocess(batch, sampled.TokenIds);
        foreach (var output in outputs)
            ProcessOutput(output, sampled.LogprobsOf(output.Row));
        EmitEmbeddings(batch);
        var finished = Stopwatch.GetTimestamp();
        _steps++;
        _lastStepDuration = Stopwatch.GetElapsedTime(started, finished);
        _schedulingTime += Stopwatch.GetElapsedTime(started, scheduled);
        _executionTime += Stopwatch.GetElapsedTime(scheduled, executed);
        _postprocessingTime += Stopwatch.GetElapsedTime(executed, finished);
    }

    /// --calculate-kv-scales: the first step wrote K and V with scales measured from them; later steps keep those.
    void ReportCalibratedScales()
    {
        _runner.Cache.CalibrateScales = false;
        var scales = _runner.Cache.ReadScales();
        Log.KVScalesCalculated(_logger, string.Join(", ", Enumerable.Range(0, scales.GetLength(0))
            .Select(layer => $"{layer}: {scales[layer, 0]:G4}/{scales[layer, 1]:G4}")));
    }

    public EngineStats Stats()
    {
        var s = _scheduler.GetStats();
        return new EngineStats
        {
            RunningRequests = s.NumRunning, WaitingRequests = s.NumWaiting,
            NumKVBlocks = s.NumBlocks, FreeKVBlocks = s.NumFreeBlocks, KVUsage = s.KVUsage,
            PrefixCacheQueries = s.PrefixCacheQueries, PrefixCacheHits = s.PrefixCacheHits,
            Preemptions = s.NumPreemptions, PromptTokens = _promptTokens, GenerationTokens = s.NumGeneratedTokens,
            Speculation = s.Speculation,
            Steps = _steps, LastStepDuration = _lastStepDuration,
            SchedulingTime = _schedulingTime, ExecutionTime = _executionTime, PostprocessingTime = _postprocessingTime,
        };
    }

    void MarkScheduled(ScheduledBatch batch)
    {
        foreach (var entry in batch.Entries)
        {
            var request = _requests[entry.Sequence.RequestId];
            if (request.HasStarted)
                continue;
            request.MarkScheduled();
            request.CachedPromptTokens = entry.Sequence.NumCachedTokens;
            _promptTokens += entry.Sequence.NumPromptTokens;
            _requestLeftQueue(request.Request);
        }
    }

    public void Dispose()
    {
        FailAll(new EngineUnavailableException("the engine stopped"));
        _dense?.Dispose();
        _runner.Dispose();
    }
}
