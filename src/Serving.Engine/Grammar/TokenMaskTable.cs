namespace Serving.Engine.Grammar;

/// The token masks of one grammar over one vocabulary, computed on first use per configuration and kept
/// (xgrammar's and Outlines' per-state mask cache). Guarded by the automaton's Gate. A table starts over past
/// MaxMasks, or when all tables together pass MaxTotalBytes: masks can always be recomputed, and a free-form
/// grammar (any JSON) can visit many states.
internal sealed class TokenMaskTable(GrammarAutomaton automaton, TokenVocabulary vocabulary)
{
    public const int MaxMasks = 4096;

    /// What the masks of every grammar may hold together (a 128k vocabulary's mask is 16 KB: 64k masks).
    public const long MaxTotalBytes = 1L << 30;

    static long s_totalBytes;

    readonly Dictionary<int, byte[]> _masks = [];
    long _bytes; // this table's share of s_totalBytes
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
        if (_masks.Count >= MaxMasks || Interlocked.Read(ref s_totalBytes) >= MaxTotalBytes) Clear();
        mask = vocabulary.ComputeMask(automaton, configuration);
        _masks.Add(configuration, mask);
        _bytes += mask.Length;
        Interlocked.Add(ref s_totalBytes, mask.Length);
        return mask;
    }

    void Clear()
    {
        Interlocked.Add(ref s_totalBytes, -_bytes);
        _bytes = 0;
        _masks.Clear();
    }

    /// Gives the table's bytes back to the budget when its grammar is collected.
    ~TokenMaskTable() => Interlocked.Add(ref s_totalBytes, -_bytes);
}
