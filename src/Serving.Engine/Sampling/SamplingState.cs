using Serving.Engine.Grammar;
using TorchSharp;

namespace Serving.Engine.Sampling;

/// What the sampler needs to know about one sequence across steps: its parameters, the prompt and the
/// tokens generated so far (penalties, min_tokens), its own seeded generator, and which ids end it.
/// Owned by the engine thread; one per sequence (a request with n = 2 has two). The token lists belong to the
/// sequence (the scheduler appends to them); this class only reads them. Stop rules live in the scheduler.
public sealed class SamplingState : IDisposable
{
    readonly long? _generatorSeed;
    torch.Generator? _generator;
    /// The sequence's own state, when this one is it after draft tokens (AfterDrafts); null for the sequence's own.
    readonly SamplingState? _origin;

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
    /// processors (penalties, bad words, min_tokens); the grammar and the generator stay the sequence's own (a draft row
    /// draws from the sequence's generator after the rows before it).
    internal SamplingState AfterDrafts(IReadOnlyList<int> drafts) => new(this, drafts);

    SamplingState(SamplingState origin, IReadOnlyList<int> drafts)
    {
        (Params, BadWordTokenIds, Grammar, PromptTokenIds, EosTokenIds) =
            (origin.Params, origin.BadWordTokenIds, origin.Grammar, origin.PromptTokenIds, origin.EosTokenIds);
        OutputTokenIds = new Speculative.TokensAndDrafts(origin.OutputTokenIds, drafts);
        _origin = origin;
    }

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

    /// This sequence's generator, made on first use; null when the request has no seed. Always a CPU generator
    /// (TorchSharp makes no device generators), so a seed gives the same draws on every device.
    internal torch.Generator? Generator => _origin is not null ? _origin.Generator
        : _generator ??= _generatorSeed is { } seed ? new torch.Generator(unchecked((ulong)seed)) : null;

    /// Disposes the generator (a state after drafts owns none).
    public void Dispose() => _generator?.Dispose();
}

