namespace Serving.Engine.Grammar;

/// A recursive transition network: Thompson's construction of every rule of a grammar into one numbered set
/// of nodes. A node has byte edges (consume one byte in a range), epsilon edges, and call edges (run another
/// rule from its start, then continue at the return node); each rule ends at its own end node, which has no
/// edges. A pushdown automaton over these nodes (GrammarAutomaton) is what recognizes the grammar.
internal sealed class Nfa
{
    /// The construction stops past this many nodes: the grammar is refused as too large.
    public const int MaxNodes = 400_000;

    readonly List<List<(ByteRange Range, int Target)>> _bytes = [];
    readonly List<List<int>> _epsilons = [];
    readonly List<List<(int Rule, int Return)>> _calls = [];
    readonly int[] _ruleStart;
    readonly int[] _ruleEnd;
    readonly Dictionary<int, int> _ruleEndingAt = [];
    bool[]? _isTail;

    public Nfa(GrammarRules rules)
    {
        _ruleStart = new int[rules.Count];
        _ruleEnd = new int[rules.Count];
        for (var rule = 0; rule < rules.Count; rule++)
        {
            _ruleStart[rule] = NewNode();
            _ruleEnd[rule] = NewNode();
            _ruleEndingAt[_ruleEnd[rule]] = rule;
        }
        for (var rule = 0; rule < rules.Count; rule++)
        {
            var end = Build(rules.Body(rule), _ruleStart[rule]);
            _epsilons[end].Add(_ruleEnd[rule]);
        }
    }

    public int NumNodes => _bytes.Count;

    public int RuleStart(int rule) => _ruleStart[rule];

    public int RuleEnd(int rule) => _ruleEnd[rule];

    public IReadOnlyList<(ByteRange Range, int Target)> ByteEdges(int node) => _bytes[node];

    public IReadOnlyList<int> Epsilons(int node) => _epsilons[node];

    public IReadOnlyList<(int Rule, int Return)> Calls(int node) => _calls[node];

    public bool IsRuleEnd(int node) => _ruleEndingAt.ContainsKey(node);

    /// True when nothing can follow this node inside its rule but the rule's end: a call returning here needs
    /// no stack entry (a tail call), which keeps right recursion from growing the stack.
    public bool IsTail(int node) => (_isTail ??= ComputeTails())[node];

    int NewNode()
    {
        if (_bytes.Count >= MaxNodes)
            throw new GrammarException($"the grammar is too large (over {MaxNodes} automaton states)");
        _bytes.Add([]);
        _epsilons.Add([]);
        _calls.Add([]);
        return _bytes.Count - 1;
    }

    /// Adds the nodes of expr starting at from; returns the node where it ends.
    int Build(GrammarExpr expr, int from)
    {
        switch (expr)
        {
            case ByteSetExpr set:
            {
                var to = NewNode();
                foreach (var range in set.Ranges) _bytes[from].Add((range, to));
                return to;
            }
            case SequenceExpr sequence:
                return sequence.Items.Aggregate(from, (at, item) => Build(item, at));
            case ChoiceExpr choice:
            {
                var end = NewNode();
                foreach (var alternative in choice.Alternatives)
                {
                    var start = NewNode();
                    _epsilons[from].Add(start);
                    _epsilons[Build(alternative, start)].Add(end);
                }
                return end;
            }
            case RepeatExpr repeat:
                return BuildRepeat(repeat, from);
            case RuleExpr call:
            {
                var to = NewNode();
                _calls[from].Add((call.Rule, to));
                return to;
            }
            default:
                throw new InvalidOperationException($"unknown grammar expression {expr.GetType().Name}");
        }
    }

    int BuildRepeat(RepeatExpr repeat, int from)
    {
        var at = from;
        for (var i = 0; i < repeat.Min; i++) at = Build(repeat.Item, at);
        if (repeat.Max is not { } max)
        {
            // loop: at -> item -> at, leaving from `at`
            var loop = NewNode();
            _epsilons[at].Add(loop);
            _epsilons[Build(repeat.Item, loop)].Add(loop);
            return loop;
        }
        var end = NewNode();
        _epsilons[at].Add(end);
        for (var i = repeat.Min; i < max; i++)
        {
            at = Build(repeat.Item, at);
            _epsilons[at].Add(end);
        }
        return end;
    }

    /// A node is not a tail when it consumes, calls, or is a dead end, or when an epsilon edge leads to a node
    /// that is not a tail: propagated backwards over the epsilon edges from those seeds.
    bool[] ComputeTails()
    {
        var predecessors = new List<int>[NumNodes];
        for (var node = 0; node < NumNodes; node++)
            foreach (var target in _epsilons[node]) (predecessors[target] ??= []).Add(node);
        var notTail = new bool[NumNodes];
        var pending = new Stack<int>();
        for (var node = 0; node < NumNodes; node++)
        {
            var seed = !IsRuleEnd(node) && (_bytes[node].Count > 0 || _calls[node].Count > 0 || _epsilons[node].Count == 0);
            if (seed && !notTail[node])
            {
                notTail[node] = true;
                pending.Push(node);
            }
        }
        while (pending.TryPop(out var node))
            foreach (var predecessor in predecessors[node] ?? [])
                if (!notTail[predecessor])
                {
                    notTail[predecessor] = true;
                    pending.Push(predecessor);
                }
        return notTail.Select(n => !n).ToArray();
    }
}

/// A grammar that cannot be built or recognized (refused as a 400 by the servers through InvalidRequestException).
internal sealed class GrammarException(string message) : Exception(message);
