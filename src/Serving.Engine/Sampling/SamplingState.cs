using Serving.Engine.Grammar;
using TorchSharp;

namespace Serving.Engine.Sampling;

/// What the sampler needs to know about one sequence across steps: its parameters, the prompt and the
/// tokens generated so far (penalties, min_tokens), its seed, and which ids end it.
/// Owned by the engine thread; one per sequence (a request with n = 2 has two). The token lists belong to the
/// sequence (the scheduler appends to them); this class only reads them. Stop rules live in the scheduler.
public sealed class SamplingState
{
    readonly long? _generatorSeed;

    /// sequenceIndex (0..n-1) is added to the request's seed, so the n sequences of a seeded request differ
    /// from each other while each stays reproducible.
    public SamplingState(
        SamplingParams parameters, IReadOnlyList<int> promptTokenIds, IReadOnlyList<int> outputTokenIds,
        IReadOnlyCollection<int> eosTokenIds, int sequenceIndex = 0, GrammarState? grammar = null,
        IReadOnlyList<int[]>? badWordTokenIds = null)
    {
        Params = parameters;
        BadWordTokenIds = badWordTokenIds ?? [];
        Grammar = grammar;
        PromptTokenIds = promptTokenIds;
        OutputTokenIds = outputTokenIds;
        EosTokenIds = eosTokenIds.ToHashSet();
        _generatorSeed = parameters.Seed + sequenceIndex;
    }

    /// The same sequence after drafts (speculative decoding): its output followed by drafts, for a draft row's logits
    /// processors (penalties, bad words, min_tokens) and its seeded draw (the token after the drafts); the grammar stays
    /// the sequence's own.
    internal SamplingState AfterDrafts(IReadOnlyList<int> drafts) => new(this, drafts);

    SamplingState(SamplingState origin, IReadOnlyList<int> drafts)
    {
        (Params, BadWordTokenIds, Grammar, PromptTokenIds, EosTokenIds, _generatorSeed) =
            (origin.Params, origin.BadWordTokenIds, origin.Grammar, origin.PromptTokenIds, origin.EosTokenIds, origin._generatorSeed);
        OutputTokenIds = new Speculative.TokensAndDrafts(origin.OutputTokenIds, drafts);
        Drafts = drafts;
    }

    /// The drafts this state is after (AfterDrafts); empty for the sequence's own.
    internal IReadOnlyList<int> Drafts { get; } = [];

    public SamplingParams Params { get; }

    public IReadOnlyList<int> PromptTokenIds { get; }

    public IReadOnlyList<int> OutputTokenIds { get; }

    /// The model's end-of-sequence ids (config/generation_config may list several).
    public IReadOnlySet<int> EosTokenIds { get; }

    /// The bad words as token ids (BadWordTokens.Of): each one's last token is banned after the ones before it.
    public IReadOnlyList<int[]> BadWordTokenIds { get; }

    /// Where the sequence is in its structured-output grammar (null: free text). Masks the tokens each step
    /// may sample (AllowedTokens); it follows OutputTokenIds on its own (GrammarState.SyncTo).
    public GrammarState? Grammar { get; }

    /// True while EOS and stop token ids must not be sampled (fewer than min_tokens generated), unless the
    /// grammar allows nothing but EOS: the end of a structured output wins over min_tokens.
    public bool IsBelowMinTokens => OutputTokenIds.Count < Params.MinTokens && Grammar is not { MustEnd: true };

    /// The ids that min_tokens masks: stop token ids, and EOS unless ignore_eos (then EOS stops nothing).
    internal IEnumerable<int> TokensBlockedByMinTokens =>
        Params.IgnoreEos ? Params.StopTokenIds : Params.StopTokenIds.Concat(EosTokenIds);

    /// The request has a seed: its draws come from NextTokenGenerator.
    internal bool HasSeed => _generatorSeed is not null;

    /// A CPU generator (TorchSharp makes no device generators, and a seed then gives the same draws on every device)
    /// for the draw of the token after OutputTokenIds, seeded from the request's seed, the sequence and that token's
    /// place: a seeded sequence's draws depend on nothing else, not on what shares its steps nor on how many tokens a
    /// step appends (speculative decoding). Null without a seed; the caller disposes it.
    internal torch.Generator? NextTokenGenerator() =>
        _generatorSeed is { } seed ? new torch.Generator(Mix(unchecked((ulong)seed), (ulong)OutputTokenIds.Count)) : null;

    /// SplitMix64 of the seed and the place, folded to 32 bits (libtorch's CPU generator keeps only the low 32 of its
    /// seed): neighbouring places give unrelated generator seeds, and the whole 64-bit mix decides them.
    static ulong Mix(ulong seed, ulong place)
    {
        var z = seed + (place + 1) * 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z ^ (z >> 32)) & 0xFFFF_FFFFUL;
    }
}

