namespace Serving.Engine.Grammar;

/// One sequence's place in its grammar: where it stands after each of its output tokens, so the state can follow the
/// sequence's tokens wherever they go (SyncTo replays new tokens and rolls back removed ones). With an opening
/// (StructuredOutputsParams.AfterTokens) the output is free until it first writes those tokens, and the grammar
/// holds it from there. Owned by the sequence's SamplingState; used by one thread at a time (the engine thread, or
/// the worker that prepares its mask while the model runs).
public sealed class GrammarState
{
    /// The configuration after EOS was accepted: only EOS may follow.
    internal const int Terminated = -2;

    readonly GrammarAutomaton _automaton;
    readonly TokenVocabulary _vocabulary;
    readonly TokenMaskTable _masks;
    readonly Opening _opening;
    readonly List<Place> _places;

    /// opening: token ids the output writes before the grammar applies (null or empty: from the first token).
    internal GrammarState(GrammarAutomaton automaton, TokenVocabulary vocabulary, IReadOnlyList<int>? opening = null)
    {
        (_automaton, _vocabulary, _opening) = (automaton, vocabulary, new Opening(opening ?? []));
        lock (automaton.Gate)
            _masks = automaton.Masks.GetValue(vocabulary, v => new TokenMaskTable(automaton, v));
        _places = [new Place(0, automaton.Start)];
    }

    /// Where the output stands after a token: how many of the opening's tokens it has just read (all of them once the
    /// grammar holds), and the automaton's configuration (its start until then).
    readonly record struct Place(int OpeningRead, int Configuration);

    /// Bytes of one row of AllowedTokens (the vocabulary's mask width).
    internal int NumMaskBytes => _vocabulary.NumMaskBytes;

    /// Output tokens the state has consumed.
    public int NumTokens => _places.Count - 1;

    Place Current => _places[^1];

    /// Whether the grammar holds the output now (it has written the opening, if there is one).
    bool Holds(Place place) => place.OpeningRead == _opening.Length;

    /// True when the grammar allows nothing but EOS now.
    public bool MustEnd
    {
        get
        {
            var current = Current;
            if (!Holds(current)) return false;
            if (current.Configuration == Terminated) return true;
            lock (_automaton.Gate) return _automaton.IsComplete(current.Configuration);
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
        var place = Current;
        if (!Holds(place))
        {
            _places.Add(place with { OpeningRead = _opening.Next(place.OpeningRead, tokenId) });   // anything goes until then
            return true;
        }
        var current = place.Configuration;
        if (_vocabulary.IsEos(tokenId))
        {
            if (current != Terminated && !IsAccepting(current)) return false;
            _places.Add(place with { Configuration = Terminated });
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
        _places.Add(place with { Configuration = current });
        return true;
    }

    public void Rollback(int numTokens) => _places.RemoveRange(_places.Count - numTokens, numTokens);

    /// Copies the allowed-token bits of the current configuration into row (NumMaskBytes bytes): every token while
    /// the output has not written the opening yet.
    public void WriteMask(Span<byte> row)
    {
        var current = Current;
        if (!Holds(current))
        {
            row.Fill(0xFF);
            return;
        }
        lock (_automaton.Gate) _masks.MaskOf(current.Configuration).CopyTo(row);
    }

    bool IsAccepting(int configuration)
    {
        lock (_automaton.Gate) return _automaton.IsAccepting(configuration);
    }

    /// The tokens that open the constrained part, matched as the output streams (Knuth-Morris-Pratt over token ids).
    sealed class Opening
    {
        readonly int[] _tokens;
        readonly int[] _fallback;   // [i]: the longest proper prefix of tokens[..(i + 1)] that also ends it

        public Opening(IReadOnlyList<int> tokens)
        {
            _tokens = [.. tokens];
            _fallback = new int[_tokens.Length];
            for (int i = 1, read = 0; i < _tokens.Length; i++)
            {
                while (read > 0 && _tokens[i] != _tokens[read]) read = _fallback[read - 1];
                if (_tokens[i] == _tokens[read]) read++;
                _fallback[i] = read;
            }
        }

        public int Length => _tokens.Length;

        /// How much of the opening the output has just read after one more token, having just read `read` of it.
        public int Next(int read, int token)
        {
            while (read > 0 && token != _tokens[read]) read = _fallback[read - 1];
            return token == _tokens[read] ? read + 1 : 0;
        }
    }
}
