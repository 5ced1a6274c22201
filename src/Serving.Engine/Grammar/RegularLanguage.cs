namespace Serving.Engine.Grammar;

/// Questions about the languages of rule-free grammar expressions (regular ones: what RegexParser and the JSON string
/// pieces build), answered on their NFAs.
internal static class RegularLanguage
{
    /// Node pairs an intersection search visits at most; past it the question is refused as too costly.
    public const int MaxPairs = 1_000_000;

    /// States a walk beside the NFA (Except, Counted) makes at most: each becomes a rule of the grammar.
    public const int MaxWalkStates = 50_000;

    /// The language but the given words (byte strings), as rules added to `into`, or null when nothing is left: the
    /// language's NFA walked beside the words' trie while the text read is a prefix of some word (trie node -1: left
    /// the trie, anything the language takes goes on).
    public static GrammarExpr? Except(GrammarExpr language, IEnumerable<byte[]> words, GrammarRules into, string name)
    {
        var trie = new List<(Dictionary<byte, int> Children, bool IsWord)> { ([], false) };
        foreach (var word in words)
        {
            var node = 0;
            foreach (var b in word)
            {
                if (!trie[node].Children.TryGetValue(b, out var child))
                {
                    trie.Add(([], false));
                    trie[node].Children[b] = child = trie.Count - 1;
                }
                node = child;
            }
            trie[node] = (trie[node].Children, true);
        }
        var (nfa, start, end) = NfaOf(language, name);
        return Walk((Node: start, Trie: 0), state =>
        {
            var (node, trieNode) = state;
            var bytes = new List<(ByteRange, (int, int))>();
            foreach (var (range, target) in nfa.ByteEdges(node))
            {
                if (trieNode < 0)
                {
                    bytes.Add((range, (target, -1)));
                    continue;
                }
                var children = trie[trieNode].Children;
                foreach (var (lo, hi) in children.Keys.Where(b => range.Lo <= b && b <= range.Hi).Aggregate(
                             (IEnumerable<(byte Lo, byte Hi)>)[(range.Lo, range.Hi)], (parts, b) => parts.SelectMany(r => Split(new ByteRange(r.Lo, r.Hi), b, b))))
                    bytes.Add((new ByteRange(lo, hi), (target, lo == hi && children.TryGetValue(lo, out var child) ? child : -1)));
            }
            return (node == end && (trieNode < 0 || !trie[trieNode].IsWord), [.. nfa.Epsilons(node).Select(t => (t, trieNode))], bytes);
        }, into, name);
    }

    /// The texts of a language of JSON string contents (as RegexParser spells them) that hold min to max characters,
    /// as rules added to `into`, or null when none does: the language's NFA walked beside a count of the characters
    /// read, an escape ("\n", "\u00e9") one character, a UTF-8 sequence one.
    public static GrammarExpr? Counted(GrammarExpr language, int min, int? max, GrammarRules into, string name)
    {
        var (nfa, start, end) = NfaOf(language, name);
        var cap = max ?? min;                                     // unbounded: counts past min are all alike
        return Walk((Node: start, Count: 0, Escape: 0), state =>
        {
            var (node, count, escape) = state;
            var bytes = nfa.ByteEdges(node)
                .SelectMany(edge => Steps(edge.Range, count, escape, cap, max is null).Select(step => (step.Part, (edge.Target, step.Next.Count, step.Next.Escape))))
                .ToList();
            return (node == end && escape == 0 && count >= min, [.. nfa.Epsilons(node).Select(t => (t, count, escape))], bytes);
        }, into, name);
    }

    static (Nfa Nfa, int Start, int End) NfaOf(GrammarExpr language, string name)
    {
        var rules = new GrammarRules();
        var only = rules.Declare(name);
        rules.Define(only, language);
        var nfa = new Nfa(rules);
        return (nfa, nfa.RuleStart(only), nfa.RuleEnd(only));
    }

    /// A right-linear grammar of the states reachable from start (expand: whether a state accepts, its epsilon moves,
    /// its byte moves), trimmed to the states from which an accepting one can be reached, so that every text it
    /// allows can be finished (an automaton would otherwise let a sequence into a state it can never leave). One rule
    /// a state, added to `into`; null when the start reaches no accepting state.
    static GrammarExpr? Walk<TState>(TState start, Func<TState, (bool Accepting, List<TState> Epsilons, List<(ByteRange Range, TState Target)> Bytes)> expand,
        GrammarRules into, string name) where TState : notnull
    {
        var index = new Dictionary<TState, int> { [start] = 0 };
        var states = new List<TState> { start };
        var moves = new List<(bool Accepting, List<int> Epsilons, List<(ByteRange Range, int Target)> Bytes)>();
        int Index(TState state)
        {
            if (index.TryGetValue(state, out var i)) return i;
            if (states.Count >= MaxWalkStates) throw new GrammarException("the pattern is too complex to combine with its other constraints");
            index[state] = states.Count;
            states.Add(state);
            return states.Count - 1;
        }
        for (var i = 0; i < states.Count; i++)
        {
            var (accepting, epsilons, bytes) = expand(states[i]);
            moves.Add((accepting, [.. epsilons.Select(Index)], [.. bytes.Select(b => (b.Range, Index(b.Target)))]));
        }
        // live: accepting, or a move into a live state (backwards from the accepting states)
        var predecessors = new List<int>[states.Count];
        for (var i = 0; i < states.Count; i++)
            foreach (var target in moves[i].Epsilons.Concat(moves[i].Bytes.Select(b => b.Target))) (predecessors[target] ??= []).Add(i);
        var live = new bool[states.Count];
        var pending = new Stack<int>(Enumerable.Range(0, states.Count).Where(i => moves[i].Accepting));
        foreach (var i in pending) live[i] = true;
        while (pending.TryPop(out var i))
            foreach (var source in predecessors[i] ?? [])
                if (!live[source])
                {
                    live[source] = true;
                    pending.Push(source);
                }
        if (!live[0]) return null;
        var rules = new Dictionary<int, int>();
        int RuleOf(int i) => rules.TryGetValue(i, out var rule) ? rule : rules[i] = into.Declare($"{name}#{i}");
        for (var i = 0; i < states.Count; i++)
        {
            if (!live[i]) continue;
            var alternatives = new List<GrammarExpr>();
            if (moves[i].Accepting) alternatives.Add(GrammarExpr.Empty);
            alternatives.AddRange(moves[i].Epsilons.Where(t => live[t]).Select(t => (GrammarExpr)new RuleExpr(RuleOf(t))));
            alternatives.AddRange(moves[i].Bytes.Where(b => live[b.Target])
                .Select(b => GrammarExpr.Sequence(new ByteSetExpr([b.Range]), new RuleExpr(RuleOf(b.Target)))));
            into.Define(RuleOf(i), new ChoiceExpr(alternatives));
        }
        return new RuleExpr(RuleOf(0));
    }

    // A byte range read at (count, escape) split by what each part does to them: escape 0 outside an escape, 1 after
    // its backslash, 2 to 5 inside a \u escape's hex digits. A byte that starts a character past the cap is dropped
    // (unbounded: the count stays at the cap).
    static IEnumerable<(ByteRange Part, (int Count, int Escape) Next)> Steps(ByteRange range, int count, int escape, int cap, bool unbounded)
    {
        if (escape == 1)
        {
            foreach (var (lo, hi) in Split(range, (byte)'u', (byte)'u'))
                yield return (new ByteRange(lo, hi), (count, lo == 'u' ? 2 : 0));
            yield break;
        }
        if (escape >= 2)
        {
            yield return (range, (count, escape == 5 ? 0 : escape + 1));
            yield break;
        }
        var counted = count + 1 > cap ? (unbounded ? cap : -1) : count + 1;
        foreach (var (lo, hi) in Split(range, 0x80, 0xBF).SelectMany(r => Split(new ByteRange(r.Lo, r.Hi), (byte)'\\', (byte)'\\')))
        {
            var continuation = lo >= 0x80 && hi <= 0xBF;
            if (continuation) yield return (new ByteRange(lo, hi), (count, 0));
            else if (counted >= 0) yield return (new ByteRange(lo, hi), (counted, lo == '\\' ? 1 : 0));
        }
    }

    // a range cut where [lo, hi] begins and ends, so that each part lies wholly inside it or wholly outside
    static IEnumerable<(byte Lo, byte Hi)> Split(ByteRange range, byte lo, byte hi)
    {
        var cuts = new[] { (int)range.Lo, Math.Clamp(lo, range.Lo, range.Hi + 1), Math.Clamp(hi + 1, range.Lo, range.Hi + 1), range.Hi + 1 };
        for (var i = 0; i + 1 < cuts.Length; i++)
            if (cuts[i] < cuts[i + 1]) yield return ((byte)cuts[i], (byte)(cuts[i + 1] - 1));
    }

    static (Nfa Nfa, (int, int) Start) PairedNfa(GrammarExpr a, GrammarExpr b)
    {
        var rules = new GrammarRules();
        var (ruleA, ruleB) = (rules.Declare("a"), rules.Declare("b"));
        rules.Define(ruleA, a);
        rules.Define(ruleB, b);
        var nfa = new Nfa(rules);
        return (nfa, (nfa.RuleStart(ruleA), nfa.RuleStart(ruleB)));
    }

    /// Whether some byte string is in both languages: a search of the product of the two NFAs from their starts for a
    /// pair of ends (epsilon edges taken on either side alone, byte edges together where their ranges overlap).
    public static bool Intersect(GrammarExpr a, GrammarExpr b)
    {
        var (nfa, start) = PairedNfa(a, b);
        var seen = new HashSet<(int, int)> { start };
        var pending = new Stack<(int A, int B)>();
        pending.Push(start);
        while (pending.TryPop(out var pair))
        {
            var (x, y) = pair;
            if (nfa.Calls(x).Count > 0 || nfa.Calls(y).Count > 0)
                throw new InvalidOperationException("RegularLanguage takes expressions without rules");
            if (nfa.IsRuleEnd(x) && nfa.IsRuleEnd(y)) return true;
            void Visit((int, int) next)
            {
                if (!seen.Add(next)) return;
                if (seen.Count > MaxPairs) throw new GrammarException("the patterns are too complex to compare");
                pending.Push(next);
            }
            foreach (var target in nfa.Epsilons(x)) Visit((target, y));
            foreach (var target in nfa.Epsilons(y)) Visit((x, target));
            foreach (var (rangeX, targetX) in nfa.ByteEdges(x))
                foreach (var (rangeY, targetY) in nfa.ByteEdges(y))
                    if (rangeX.Lo <= rangeY.Hi && rangeY.Lo <= rangeX.Hi) Visit((targetX, targetY));
        }
        return false;
    }
}
