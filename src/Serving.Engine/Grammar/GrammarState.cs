namespace Serving.Engine.Grammar;

/// One sequence's place in its grammar: the automaton configuration after each of its output tokens, so the
/// state can follow the sequence's tokens wherever they go (SyncTo replays new tokens and rolls back removed
/// ones). Owned by the sequence's SamplingState; used by one thread at a time (the engine thread, or the
/// worker that prepares its mask while the model runs).
public sealed class GrammarState
{
    /// The configuration after EOS was accepted: only EOS may follow.
    internal const int Terminated = -2;

    readonly GrammarAutomaton _automaton;
    readonly TokenVocabulary _vocabulary;
    readonly TokenMaskTable _masks;
    readonly List<int> _configurations;

    internal GrammarState(GrammarAutomaton automaton, TokenVocabulary vocabulary)
    {
        (_automaton, _vocabulary) = (automaton, vocabulary);
        lock (automaton.Gate)
            _masks = automaton.Masks.GetValue(vocabulary, v => new TokenMaskTable(automaton, v));
        _configurations = [automaton.Start];
    }

    /// Bytes of one row of AllowedTokens (the vocabulary's mask width).
    internal int NumMaskBytes => _vocabulary.NumMaskBytes;

    /// Output tokens the state has consumed.
    public int NumTokens => _configurations.Count - 1;

    int Current => _configurations[^1];

    /// True when the grammar allows nothing but EOS now.
    public bool MustEnd
    {
        get
        {
            if (Current == Terminated) return true;
            lock (_automaton.Gate) return _automaton.IsComplete(Current);
        }
    }

    /// Brings the state to the sequence's output tokens: rolls back what is no longer there (a preemption
    /// that dropped tokens), then consumes the new ones. False when a token breaks the grammar (the state then
    /// stays at the last token that fit).
    public bool SyncTo(IReadOnlyList<int> outputTokenIds)
    {
        var keep = Math.Min(NumTokens, outputTokenIds.Count);
        if (keep < NumTokens) Rollback(NumTokens - keep);
        for (var i = NumTokens; i < outputTokenIds.Count; i++)
            if (!TryAccept(outputTokenIds[i])) return false;
        return true;
    }

    /// Consumes one token; false (state unchanged) when the grammar does not allow it here.
    public bool TryAccept(int tokenId)
    {
        var current = Current;
        if (_vocabulary.IsEos(tokenId))
        {
            if (current != Terminated && !IsAccepting(current)) return false;
            _configurations.Add(Terminated);
            return true;
        }
        if (current == Terminated || _vocabulary.Bytes(tokenId) is not { } bytes) return false;
        lock (_automaton.Gate)
        {
            foreach (var b in bytes)
            {
                current = _automaton.Step(current, b);
                if (current == GrammarAutomaton.Dead) return false;
            }
        }
        _configurations.Add(current);
        return true;
    }

    public void Rollback(int numTokens) => _configurations.RemoveRange(_configurations.Count - numTokens, numTokens);

    /// Copies the allowed-token bits of the current configuration into row (NumMaskBytes bytes).
    public void WriteMask(Span<byte> row)
    {
        lock (_automaton.Gate) _masks.MaskOf(Current).CopyTo(row);
    }

    bool IsAccepting(int configuration)
    {
        lock (_automaton.Gate) return _automaton.IsAccepting(configuration);
    }
}
