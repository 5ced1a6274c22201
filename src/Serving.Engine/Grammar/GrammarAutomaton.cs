namespace Serving.Engine.Grammar;

/// The pushdown automaton of a grammar, determinized lazily over bytes. A *configuration* is everything the
/// recognizer knows after a prefix: the set of threads (NFA node waiting for a byte, call stack) that are
/// still alive, and whether the whole grammar could end here. Configurations are interned to small integers
/// and their byte transitions memoized, so once warm a step is one array read, and a token mask for a
/// configuration is one walk of the vocabulary trie (TokenMasks). Stacks are hash-consed (StackTable).
/// Not thread-safe: callers hold Gate while stepping or interning.
internal sealed class GrammarAutomaton
{
    /// Threads deeper than this are dropped (a recursion that never consumes cannot run away).
    public const int MaxStackDepth = 512;

    /// The configuration a dead prefix leads to.
    public const int Dead = -1;

    readonly Nfa _nfa;
    readonly StackTable _stacks = new();
    readonly List<Configuration> _configurations = [];
    readonly Dictionary<ConfigurationKey, int> _index = [];

    public GrammarAutomaton(Nfa nfa, int rootRule, string description)
    {
        _nfa = nfa;
        Description = description;
        Start = Intern(Closure([Thread(nfa.RuleStart(rootRule), StackTable.Empty)]));
        if (Start == Dead)
            throw new GrammarException("the grammar matches no text at all");
    }

    /// Lock to hold while calling Step, IsAccepting, or computing masks.
    public object Gate { get; } = new();

    public int Start { get; }

    /// What the grammar was built from (kind and size), for logs and errors.
    public string Description { get; }

    public int NumConfigurations => _configurations.Count;

    /// How long building the NFA and the start configuration took (the per-schema compile cost).
    public TimeSpan CompileTime { get; internal set; }

    /// The token masks of this grammar over each engine's vocabulary (guarded by Gate).
    internal System.Runtime.CompilerServices.ConditionalWeakTable<TokenVocabulary, TokenMaskTable> Masks { get; } = new();

    /// True when the text so far is a whole sentence of the grammar (EOS may follow).
    public bool IsAccepting(int configuration) => _configurations[configuration].Accepting;

    /// True when no byte can follow (only EOS).
    public bool IsComplete(int configuration) => _configurations[configuration].Threads.Length == 0;

    /// The configuration after one more byte, or Dead.
    public int Step(int configuration, byte value)
    {
        var next = _configurations[configuration].Next;
        var known = next[value];
        if (known != 0) return known < 0 ? Dead : known - 1;
        var seeds = new List<long>();
        foreach (var thread in _configurations[configuration].Threads)
        {
            var node = (int)(thread >> 32);
            foreach (var (range, target) in _nfa.ByteEdges(node))
                if (range.Lo <= value && value <= range.Hi)
                    seeds.Add(Thread(target, (int)thread));
        }
        var result = seeds.Count == 0 ? Dead : Intern(Closure(seeds));
        next[value] = result == Dead ? -1 : result + 1;
        return result;
    }

    static long Thread(int node, int stack) => ((long)node << 32) | (uint)stack;

    /// Follows epsilon edges, calls (push the return node unless it is a tail) and rule ends (pop) from the
    /// seeds; keeps the threads that wait for a byte. Accepting when some thread ends a rule on an empty stack.
    (long[] Threads, bool Accepting) Closure(IEnumerable<long> seeds)
    {
        var visited = new HashSet<long>();
        var pending = new Stack<long>(seeds);
        var waiting = new SortedSet<long>();
        var accepting = false;
        while (pending.TryPop(out var thread))
        {
            if (!visited.Add(thread)) continue;
            var (node, stack) = ((int)(thread >> 32), (int)thread);
            if (_nfa.ByteEdges(node).Count > 0) waiting.Add(thread);
            foreach (var target in _nfa.Epsilons(node)) pending.Push(Thread(target, stack));
            foreach (var (rule, returnNode) in _nfa.Calls(node))
            {
                var callee = _nfa.IsTail(returnNode) ? stack : _stacks.Push(returnNode, stack);
                if (_stacks.Depth(callee) <= MaxStackDepth) pending.Push(Thread(_nfa.RuleStart(rule), callee));
            }
            if (!_nfa.IsRuleEnd(node)) continue;
            if (stack == StackTable.Empty) accepting = true;
            else pending.Push(Thread(_stacks.Top(stack), _stacks.Parent(stack)));
        }
        return ([.. waiting], accepting);
    }

    int Intern((long[] Threads, bool Accepting) closure)
    {
        if (closure.Threads.Length == 0 && !closure.Accepting) return Dead;
        var key = new ConfigurationKey(closure.Threads, closure.Accepting);
        if (_index.TryGetValue(key, out var id)) return id;
        id = _configurations.Count;
        _configurations.Add(new Configuration(closure.Threads, closure.Accepting));
        _index.Add(key, id);
        return id;
    }

    sealed class Configuration(long[] threads, bool accepting)
    {
        public long[] Threads { get; } = threads;
        public bool Accepting { get; } = accepting;
        /// Byte -> next configuration + 1; 0: not computed yet; -1: dead.
        public int[] Next { get; } = new int[256];
    }

    readonly struct ConfigurationKey(long[] threads, bool accepting) : IEquatable<ConfigurationKey>
    {
        readonly int _hash = Hash(threads, accepting);

        public long[] Threads { get; } = threads;
        public bool Accepting { get; } = accepting;

        public bool Equals(ConfigurationKey other) =>
            _hash == other._hash && Accepting == other.Accepting && Threads.AsSpan().SequenceEqual(other.Threads);

        public override bool Equals(object? obj) => obj is ConfigurationKey other && Equals(other);

        public override int GetHashCode() => _hash;

        static int Hash(long[] threads, bool accepting)
        {
            var hash = new HashCode();
            hash.Add(accepting);
            foreach (var thread in threads) hash.Add(thread);
            return hash.ToHashCode();
        }
    }
}

/// Call stacks as hash-consed linked lists: equal stacks are the same id, so configurations compare by id.
internal sealed class StackTable
{
    public const int Empty = 0;

    readonly List<(int Top, int Parent, int Depth)> _entries = [(0, 0, 0)];
    readonly Dictionary<(int Top, int Parent), int> _index = [];

    public int Push(int returnNode, int parent)
    {
        if (_index.TryGetValue((returnNode, parent), out var id)) return id;
        _entries.Add((returnNode, parent, _entries[parent].Depth + 1));
        _index.Add((returnNode, parent), _entries.Count - 1);
        return _entries.Count - 1;
    }

    public int Top(int stack) => _entries[stack].Top;

    public int Parent(int stack) => _entries[stack].Parent;

    public int Depth(int stack) => _entries[stack].Depth;
}
