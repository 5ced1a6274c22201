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
    readonly int[] _promptTokenIds;
    readonly List<int> _outputTokenIds = [];
    int[] _tokenBuffer = [];    // prompt then output, contiguous (TokenSpan); its first _numBuffered are current
    int _numBuffered;

    public Sequence(GenerationRequest request, int index, Sequence? parent, long arrival, string? adapterKey = null)
    {
        RequestId = request.RequestId;
        Priority = request.Priority;
        LoraAdapter = request.LoraAdapter;
        BlockTable = new BlockTable(PrefixSalt(adapterKey, request.CacheSalt));
        Arrival = arrival;
        Index = index;
        Parent = parent;
        Sampling = request.Sampling;
        _promptTokenIds = request.PromptTokenIds.ToArray();
        TokenIds = new SequenceTokens(_promptTokenIds, _outputTokenIds);
    }

    public string RequestId { get; }
    public int Index { get; }
    public Sequence? Parent { get; }
    public SamplingParams Sampling { get; }
    /// The request's priority (lower first under the priority policy) and the order the scheduler received it in.
    public int Priority { get; }
    /// The LoRA adapter the sequence runs with (null: the base model).
    public string? LoraAdapter { get; }
    public long Arrival { get; }

    /// Whether this sequence comes before other in the priority policy's order: (priority, arrival).
    public bool GoesBefore(Sequence other) => Priority != other.Priority ? Priority < other.Priority : Arrival < other.Arrival;

    public IReadOnlyList<int> PromptTokenIds => _promptTokenIds;
    public IReadOnlyList<int> OutputTokenIds => _outputTokenIds;
    /// Prompt then output tokens, without copying.
    public IReadOnlyList<int> TokenIds { get; }

    public int NumPromptTokens => _promptTokenIds.Length;
    public int NumOutputTokens => _outputTokenIds.Count;
    public int NumTokens => NumPromptTokens + NumOutputTokens;

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

    /// What keeps the sequence's prefix-cache blocks apart from other requests' of the same tokens: the load of its
    /// LoRA adapter (whose K/V differs from the base model's and from another load's) and its cache salt; null when it
    /// has neither. Length-prefixed, so no two (adapter, salt) pairs give the same text.
    static string? PrefixSalt(string? adapterKey, string? cacheSalt) =>
        adapterKey is null && cacheSalt is null ? null
            : $"lora {adapterKey?.Length ?? -1}:{adapterKey} salt {cacheSalt?.Length ?? -1}:{cacheSalt}";

    internal void MarkComputed(int numComputedTokens)
    {
        NumComputedTokens = numComputedTokens;
        HasComputedPrompt |= numComputedTokens >= NumPromptTokens;
    }

    internal void AppendToken(int tokenId) => _outputTokenIds.Add(tokenId);

    /// Keeps the first count output tokens (a finished sequence whose text ended before its last tokens).
    internal void TruncateOutput(int count)
    {
        _outputTokenIds.RemoveRange(count, _outputTokenIds.Count - count);
        _numBuffered = Math.Min(_numBuffered, NumTokens);
    }

    /// Prompt then output as one contiguous span, for searches that want one (the n-gram proposer): a copy kept up to
    /// date as tokens are appended, made on first use. Valid until the next token is appended.
    internal ReadOnlySpan<int> TokenSpan()
    {
        if (_tokenBuffer.Length < NumTokens)
            Array.Resize(ref _tokenBuffer, Math.Max(NumTokens, 2 * _tokenBuffer.Length));
        for (; _numBuffered < NumTokens; _numBuffered++)
            _tokenBuffer[_numBuffered] = _numBuffered < NumPromptTokens ? _promptTokenIds[_numBuffered] : _outputTokenIds[_numBuffered - NumPromptTokens];
        return _tokenBuffer.AsSpan(0, NumTokens);
    }

    public override string ToString() => $"{RequestId}#{Index} ({Status}, {NumComputedTokens}/{NumTokens} computed)";

    /// A read-only view of prompt followed by output.
    sealed class SequenceTokens(int[] prompt, List<int> output) : IReadOnlyList<int>
    {
        public int Count => prompt.Length + output.Count;

        public int this[int index] => index < prompt.Length ? prompt[index] : output[index - prompt.Length];

        public IEnumerator<int> GetEnumerator() => prompt.Concat(output).GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
