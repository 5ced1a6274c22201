using Serving.Engine.KVCache;
using Serving.Engine.Sampling;

namespace Serving.Engine.Scheduling;

internal enum SequenceStatus
{
    /// Queued, never scheduled.
    Waiting,
    /// Holds blocks and is scheduled each step it fits the budgets.
    Running,
    /// Lost its blocks to a newer sequence's need; queued at the front of waiting to recompute its tokens.
    Preempted,
    /// Done (FinishReason says why); holds no blocks.
    Finished,
}

/// One generation stream: the prompt, the tokens sampled so far and how many of them have KV in the pool.
/// A request with n > 1 has n sequences (Index 0..n-1); Parent is sibling 0 for the others.
///
/// Invariant while not finished: 0 <= NumComputedTokens < NumTokens (the last token is always the next
/// step's input) and the block table holds slots for NumComputedTokens tokens at least.
internal sealed class Sequence
{
    int[] _tokens;              // prompt then output, contiguous; the first _numTokens are the sequence's
    int _numTokens;

    public Sequence(GenerationRequest request, int index, Sequence? parent, long arrival, string? adapterKey = null)
    {
        RequestId = request.RequestId;
        Priority = request.Priority;
        LoraAdapter = request.LoraAdapter;
        Salt = PrefixSalt(adapterKey, request.CacheSalt);
        BlockTable = new BlockTable(Salt);
        Arrival = arrival;
        Index = index;
        Parent = parent;
        Sampling = request.Sampling;
        Pooling = request.Pooling;
        _tokens = request.PromptTokenIds.ToArray();
        _numTokens = NumPromptTokens = _tokens.Length;
        PromptTokenIds = new TokenView(this, 0, NumPromptTokens);
        OutputTokenIds = new TokenView(this, NumPromptTokens, count: null);
        TokenIds = new TokenView(this, 0, count: null);
    }

    public string RequestId { get; }
    public int Index { get; }
    public Sequence? Parent { get; }
    public SamplingParams Sampling { get; }
    /// An embedding request's pooling: the sequence computes its prompt, samples nothing and is finished once the
    /// whole prompt is computed. Null for generation.
    public Pooling.PoolingParams? Pooling { get; }
    /// The request's priority (lower first under the priority policy) and the order the scheduler received it in.
    public int Priority { get; }
    /// The LoRA adapter the sequence runs with (null: the base model).
    public string? LoraAdapter { get; }
    public long Arrival { get; }

    /// Whether this sequence comes before other in the priority policy's order: (priority, arrival).
    public bool GoesBefore(Sequence other) => Priority != other.Priority ? Priority < other.Priority : Arrival < other.Arrival;

    /// Live read-only views of the sequence's tokens (appended tokens show at once), without copying.
    public IReadOnlyList<int> PromptTokenIds { get; }
    public IReadOnlyList<int> OutputTokenIds { get; }
    /// Prompt then output tokens, without copying.
    public IReadOnlyList<int> TokenIds { get; }

    public int NumPromptTokens { get; }
    public int NumOutputTokens => _numTokens - NumPromptTokens;
    public int NumTokens => _numTokens;

    /// Tokens whose KV is in the pool (reset to 0 by preemption).
    public int NumComputedTokens { get; internal set; }
    public int NumUncomputedTokens => NumTokens - NumComputedTokens;

    /// Prompt tokens found in the prefix cache when first scheduled (usage's cached prompt tokens).
    public int NumCachedTokens { get; internal set; }

    /// Tokens proposed to follow the sequence's last one (speculative decoding), checked by the next step that
    /// schedules it; empty when none are proposed. Replaced after every step that samples for the sequence.
    public IReadOnlyList<int> DraftTokenIds { get; internal set; } = [];

    /// The last check of the sequence's drafts: the output length before it and the drafts it kept (so that a stop
    /// string met inside them can take back the ones after it).
    internal (int OutputsBefore, int Kept) LastCheck { get; set; }

    /// True once the whole prompt was computed at least once: its full blocks are then in the prefix cache.
    public bool HasComputedPrompt { get; private set; }

    public BlockTable BlockTable { get; }
    public SequenceStatus Status { get; internal set; } = SequenceStatus.Waiting;
    public FinishReason? FinishReason { get; internal set; }
    public bool IsFinished => Status == SequenceStatus.Finished;

    /// What keeps the sequence's prefix-cache blocks (and the answers suffix decoding drafts from) apart from other
    /// requests': the load of its LoRA adapter (whose K/V differs from the base model's and from another load's) and
    /// its cache salt; null when it has neither. Length-prefixed, so no two (adapter, salt) pairs give the same text.
    internal string? Salt { get; }

    static string? PrefixSalt(string? adapterKey, string? cacheSalt) =>
        adapterKey is null && cacheSalt is null ? null
            : $"lora {adapterKey?.Length ?? -1}:{adapterKey} salt {cacheSalt?.Length ?? -1}:{cacheSalt}";

    internal void MarkComputed(int numComputedTokens)
    {
        NumComputedTokens = numComputedTokens;
        HasComputedPrompt |= numComputedTokens >= NumPromptTokens;
    }

    internal void AppendToken(int tokenId)
    {
        if (_numTokens == _tokens.Length)
            Array.Resize(ref _tokens, Math.Max(16, 2 * _tokens.Length));
        _tokens[_numTokens++] = tokenId;
    }

    /// Keeps the first count output tokens (a finished sequence whose text ended before its last tokens).
    internal void TruncateOutput(int count) => _numTokens = NumPromptTokens + count;

    /// Prompt then output as one span, for searches that want one (the n-gram proposer). Valid until the next token
    /// is appended.
    internal ReadOnlySpan<int> TokenSpan() => _tokens.AsSpan(0, _numTokens);

    public override string ToString() => $"{RequestId}#{Index} ({Status}, {NumComputedTokens}/{NumTokens} computed)";

    /// Tokens [start, start + count) of the sequence, or from start to its end when count is null, read live.
    sealed class TokenView(Sequence sequence, int start, int? count) : IReadOnlyList<int>
    {
        public int Count => count ?? sequence._numTokens - start;

        public int this[int index] => (uint)index < (uint)Count ? sequence._tokens[start + index]
            : throw new ArgumentOutOfRangeException(nameof(index), index, $"a view of {Count} tokens");

        public IEnumerator<int> GetEnumerator()
        {
            for (var i = 0; i < Count; i++)
                yield return sequence._tokens[start + i];
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
