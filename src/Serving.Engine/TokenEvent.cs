namespace Serving.Engine;

/// What GenerateAsync yields: new tokens of one of the request's sequences (Index is 0..n-1 when n > 1).
/// The last event of a sequence carries its FinishReason; the last event of the whole request carries
/// Usage and Timings (so a request with n = 1 ends with one event that has all three).
public sealed record TokenEvent
{
    public required int Index { get; init; }

    /// Tokens appended since the previous event of this sequence (often one; empty on a pure finish event).
    public required IReadOnlyList<int> TokenIds { get; init; }

    /// Text these tokens add, from the incremental detokenizer: never half a UTF-8 character, and the
    /// concatenation of all deltas of a sequence equals its final text (stop strings are cut out).
    public required string TextDelta { get; init; }

    /// One entry per token in TokenIds when the request asked for log-probabilities, else null.
    public IReadOnlyList<TokenLogprob>? Logprobs { get; init; }

    /// On the request's first event, when it asked for them (SamplingParams.PromptLogprobs): one entry per prompt
    /// token, null for the first (nothing precedes it), each with its Rank.
    public IReadOnlyList<TokenLogprob?>? PromptLogprobs { get; init; }

    public FinishReason? FinishReason { get; init; }

    /// The stop string or stop token id that ended the sequence, when one did (vLLM's stop_reason).
    public StopReason? StopReason { get; init; }

    public RequestUsage? Usage { get; init; }

    /// An embedding request's (GenerationRequest.Pooling) one event: the pooled vector, with FinishReason Stop.
    public float[]? Embedding { get; init; }

    public RequestTimings? Timings { get; init; }
}

/// Why a sequence ended (the servers map it to their APIs' words).
public enum FinishReason
{
    /// EOS, a stop token id or a stop string.
    Stop,
    /// max_tokens reached, or the model's context is full.
    Length,
    /// Cancelled by the caller, or aborted at shutdown.
    Abort,
}

/// Which stop condition ended a sequence that finished with FinishReason.Stop, when it was not EOS.
public abstract record StopReason
{
    /// A stop string matched in the output text.
    public sealed record String(string Text) : StopReason;

    /// A stop token id was sampled.
    public sealed record TokenId(int Id) : StopReason;
}

/// Log-probability of a chosen token, and the most likely alternatives at that position.
public sealed record TokenLogprob(int TokenId, float Logprob, IReadOnlyList<TopLogprob> Top)
{
    /// 1 + the number of tokens more likely than this one (given for prompt tokens; null where not computed).
    public int? Rank { get; init; }
}

public sealed record TopLogprob(int TokenId, float Logprob);

/// Token counts of a whole request (all n sequences). CachedPromptTokens came from the prefix cache.
public sealed record RequestUsage(int PromptTokens, int CompletionTokens, int CachedPromptTokens)
{
    public int TotalTokens => PromptTokens + CompletionTokens;
}

/// Wall-clock figures of a request: waiting before first schedule, time to first token, whole request.
public sealed record RequestTimings(TimeSpan Queue, TimeSpan TimeToFirstToken, TimeSpan Total);
