using Serving.Engine.KVCache;

namespace Serving.Engine.Scheduling;

/// Iteration-level scheduler (Orca / vLLM): each step decides how many tokens every sequence computes now.
/// Owned by the engine thread; not thread-safe. The engine loop is
///
///     var batch = scheduler.Schedule();                       // who computes what
///     var inputs = BatchMetadata.Build(batch, blockSize);     // slots and block tables for the model
///     var tokens = model + sampler (inputs);                  // one token per batch.SamplingEntries
///     var outputs = scheduler.Postprocess(batch, tokens);     // append, finish, free
///
/// Queues: waiting (FCFS; preempted sequences re-enter at the front) and running (in admission order, so
/// the newest is last and is the first to be preempted). Under the priority policy both are kept in (priority,
/// arrival) order instead, so the lowest priority is last: admitted last, preempted first.
internal sealed partial class Scheduler
{
    readonly SchedulerOptions _options;
    readonly KVCacheManager _kvCache;
    readonly LinkedList<Sequence> _waiting = new();
    readonly List<Sequence> _running = [];
    readonly Dictionary<string, Sequence[]> _requests = new();
    long _numArrivals;
    long _numPreemptions;
    long _numComputedTokens;
    long _numGeneratedTokens;
    readonly Speculative.SpeculationCounters? _speculation;
    readonly Speculative.DraftProposer? _drafts;   // with --speculative-config

    public Scheduler(SchedulerOptions options, KVCacheManager kvCache)
    {
        options.Validate();
        _options = options;
        _kvCache = kvCache;
        _speculation = options.Speculative is { } config ? new Speculative.SpeculationCounters(config.NumSpeculativeTokens) : null;
        _drafts = options.Speculative is { } speculative ? Speculative.DraftProposer.For(speculative) : null;
    }

    public KVCacheManager KVCache => _kvCache;
    public IReadOnlyCollection<Sequence> Waiting => _waiting;
    public IReadOnlyList<Sequence> Running => _running;
    public bool HasUnfinishedSequences => _waiting.Count > 0 || _running.Count > 0;

    /// Admits a request (already checked by RequestValidation) as N waiting sequences (sibling 0 first); adapterKey is
    /// the served load of its LoRA adapter (LoraAdapter.Key; default its name), which salts its prefix blocks. Throws
    /// InvalidRequestException, naming the counts, when the whole KV pool could never hold it, or when its request
    /// id is already live.
    public IReadOnlyList<Sequence> Add(GenerationRequest request, string? adapterKey = null)
    {
        AdmissionCheck.Validate(request, _kvCache, _options.MaxNumBatchedTokens);
        if (request.Priority != 0 && _options.Policy != SchedulingPolicy.Priority)
            throw new InvalidRequestException(
                $"priority {request.Priority} needs priority scheduling (start the server with --scheduling-policy priority)", "priority");
        if (_requests.ContainsKey(request.RequestId))
            throw new InvalidRequestException($"request id '{request.RequestId}' is already in use", "request_id");
        var sequences = new Sequence[request.Sampling.N];
        for (var index = 0; index < sequences.Length; index++)
        {
            sequences[index] = new Sequence(request, index, index == 0 ? null : sequences[0], _numArrivals++, adapterKey ?? request.LoraAdapter);
            Wait(sequences[index], preempted: false);
        }
        _requests.Add(request.RequestId, sequences);
        return sequences;
    }

    /// Cancels every unfinished sequence of the request, in any state, freeing its blocks now. Returns the
    /// sequences it finished (with FinishReason.Abort); empty when the request is unknown or already done.
    public IReadOnlyList<Sequence> Abort(string requestId)
    {
        if (!_requests.TryGetValue(requestId, out var sequences))
            return [];
        var aborted = sequences.Where(sequence => !sequence.IsFinished).ToList();
        foreach (var sequence in aborted)
            Finish(sequence, FinishReason.Abort);
        return aborted;
    }

    /// Ends a sequence for a reason found outside the scheduler (a stop string matched by the detokenizer,
    /// a sampling failure): removes it from its queue and frees its blocks. No-op when already finished.
    /// numOutputTokens: the output ends after this many tokens (a stop string met at a draft kept in the step that
    /// appended more after it): the later ones are dropped, and not counted as generated, even if already finished.
    public void Finish(Sequence sequence, FinishReason reason, int? numOutputTokens = null)
    {
        if (numOutputTokens is { } keep && keep < sequence.NumOutputTokens)
        {
            _numGeneratedTokens -= sequence.NumOutputTokens - keep;
            // the dropped tokens came from the sequence's last step: the drafts among them were not kept after all
            var (outputsBefore, kept) = sequence.LastCheck;
            _speculation?.Retract(Math.Clamp(keep - outputsBefore, 0, kept), kept);
            sequence.TruncateOutput(keep);
        }
        if (sequence.IsFinished)
            return;
        if (sequence.Status == SequenceStatus.Running)
            _running.Remove(sequence);
        else
            _waiting.Remove(sequence);
        _kvCache.Free(sequence.BlockTable);
        sequence.DraftTokenIds = [];
        sequence.Status = SequenceStatus.Finished;
        sequence.FinishReason = reason;
        if (reason != FinishReason.Abort && sequence.Pooling is null)
            _drafts?.Finished(sequence.TokenSpan()[sequence.NumPromptTokens..], sequence.Salt);   // suffix decoding remembers answers
        var siblings = _requests[sequence.RequestId];
        if (siblings.All(sibling => sibling.IsFinished))
            _requests.Remove(sequence.RequestId);
    }

    /// Queues a sequence: FCFS at the back (a preempted one at the front), else at its (priority, arrival) place.
    void Wait(Sequence sequence, bool preempted)
    {
        if (_options.Policy == SchedulingPolicy.Fcfs)
        {
            if (preempted) _waiting.AddFirst(sequence);
            else _waiting.AddLast(sequence);
            return;
        }
        var node = _waiting.First;
        while (node is not null && !sequence.GoesBefore(node.Value)) node = node.Next;
        if (node is null) _waiting.AddLast(sequence);
        else _waiting.AddBefore(node, sequence);
    }

    /// Marks a sequence running: FCFS last (the newest), else at its (priority, arrival) place.
    void Run(Sequence sequence)
    {
        var place = _options.Policy == SchedulingPolicy.Fcfs ? -1 : _running.FindIndex(sequence.GoesBefore);
        _running.Insert(place < 0 ? _running.Count : place, sequence);
    }

    public SchedulerStats GetStats() => new(
        NumRunning: _running.Count,
        NumWaiting: _waiting.Count,
        NumBlocks: _kvCache.NumBlocks,
        NumFreeBlocks: _kvCache.NumFreeBlocks,
        KVUsage: _kvCache.Usage,
        PrefixCacheQueries: _kvCache.PrefixCacheQueries,
        PrefixCacheHits: _kvCache.PrefixCacheHits,
        NumPreemptions: _numPreemptions,
        NumComputedTokens: _numComputedTokens,
        NumGeneratedTokens: _numGeneratedTokens,
        Speculation: _speculation?.Snapshot() ?? Speculative.SpeculationStats.None);
}
