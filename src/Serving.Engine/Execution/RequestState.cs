using System.Diagnostics;
using System.Threading.Channels;
using Serving.Engine.Sampling;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Execution;

/// One request as the engine thread tracks it: where its events go, its timings, and the text-side state of
/// each of its n sequences. Created by the caller, then touched only by the engine thread (the output
/// channel is the one thing both sides use).
internal sealed class RequestState
{
    readonly long _arrivalTimestamp = Stopwatch.GetTimestamp();
    long? _firstScheduledTimestamp;
    long? _firstTokenTimestamp;

    public RequestState(GenerationRequest request)
    {
        Request = request;
        Pooled = request.Pooling is { } pooling ? new Pooling.PooledState(pooling, request.PromptTokenIds.Count) : null;
        Output = Channel.CreateUnbounded<TokenEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    }

    public GenerationRequest Request { get; }
    public string RequestId => Request.RequestId;
    public Channel<TokenEvent> Output { get; }

    /// An embedding request's pooling so far (null for generation).
    public Pooling.PooledState? Pooled { get; }

    /// Text-side state per sequence index (0..n-1), made when the scheduler admits the request.
    public SequenceText[] Sequences { get; private set; } = [];

    public int NumFinished { get; set; }
    public int CompletionTokens { get; set; }
    public int CachedPromptTokens { get; set; }
    public bool HasStarted => _firstScheduledTimestamp is not null;

    public void Start(IReadOnlyList<SequenceText> sequences) => Sequences = sequences.ToArray();

    /// The prompt's log-probabilities as its prefill computes them (entry p for prompt token p; 0 stays null);
    /// null when the request asked for none or no chunk computed any yet.
    TokenLogprob?[]? _promptLogprobs;
    bool _promptLogprobsTaken;

    /// Whether a prefill chunk starting at start still has prompt log-probabilities to give (a chunk computed
    /// again after a preemption has none).
    public bool WantsPromptLogprobs(int start) =>
        Request.Sampling.PromptLogprobs is not null && !_promptLogprobsTaken && start < Request.PromptTokenIds.Count - 1
        && _promptLogprobs?[start + 1] is null;

    /// values[i] is the log-probability of prompt token start + 1 + i (the chunk's row i predicts it).
    public void RecordPromptLogprobs(int start, IReadOnlyList<TokenLogprob> values)
    {
        _promptLogprobs ??= new TokenLogprob?[Request.PromptTokenIds.Count];
        for (var i = 0; i < values.Count; i++) _promptLogprobs[start + 1 + i] ??= values[i];
    }

    /// The prompt log-probabilities for the request's first event (null ever after, or when none were asked).
    public IReadOnlyList<TokenLogprob?>? TakePromptLogprobs()
    {
        if (Request.Sampling.PromptLogprobs is null || _promptLogprobsTaken) return null;
        _promptLogprobsTaken = true;
        return _promptLogprobs ?? new TokenLogprob?[Request.PromptTokenIds.Count];
    }

    public void MarkScheduled() => _firstScheduledTimestamp ??= Stopwatch.GetTimestamp();

    public void MarkToken() => _firstTokenTimestamp ??= Stopwatch.GetTimestamp();

    public RequestTimings Timings()
    {
        var now = Stopwatch.GetTimestamp();
        var scheduled = _firstScheduledTimestamp ?? now;
        var firstToken = _firstTokenTimestamp ?? now;
        return new RequestTimings(
            Stopwatch.GetElapsedTime(_arrivalTimestamp, scheduled),
            Stopwatch.GetElapsedTime(_arrivalTimestamp, firstToken),
            Stopwatch.GetElapsedTime(_arrivalTimestamp, now));
    }

    /// Ends the stream with an error the caller sees as an exception from GenerateAsync.
    public void Fail(Exception error) => Output.Writer.TryComplete(error);
}

/// Text-side state of one sequence: its sampler state, its incremental detokenizer and its stop-string matcher.
internal sealed class SequenceText(SamplingState sampling, IncrementalDetokenizer detokenizer, StopStringMatcher stops)
{
    public SamplingState Sampling { get; } = sampling;
    public IncrementalDetokenizer Detokenizer { get; } = detokenizer;
    public StopStringMatcher Stops { get; } = stops;
    /// The sequence's last event was sent: later tokens of the same step are dropped.
    public bool HasEnded { get; set; }
}
