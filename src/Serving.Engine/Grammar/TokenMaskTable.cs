namespace Serving.Engine.Grammar;

/// The token masks of one grammar over one vocabulary, computed on first use per configuration and kept
/// (xgrammar's and Outlines' per-state mask cache). Guarded by the automaton's Gate. Past MaxMasks the table
/// starts over: masks can always be recomputed, and a free-form grammar (any JSON) can visit many states.
internal sealed class TokenMaskTable(GrammarAutomaton automaton, TokenVocabulary vocabulary)
{
    public const int MaxMasks = 4096;

    readonly Dictionary<int, byte[]> _masks = [];
    readonly byte[] _eosOnly = vocabulary.EosOnlyMask();

    public long Hits { get; private set; }
    public long Misses { get; private set; }

    /// The mask of a configuration; GrammarState.Terminated gives EOS only.
    public byte[] MaskOf(int configuration)
    {
        if (configuration == GrammarState.Terminated) return _eosOnly;
        if (_masks.TryGetValue(configuration, out var mask))
        {
            Hits++;
            return mask;
        }
        Misses++;
        if (_masks.Count >= MaxMasks) _masks.Clear();
        mask = vocabulary.ComputeMask(automaton, configuration);
        _masks.Add(configuration, mask);
        return mask;
    }
}
