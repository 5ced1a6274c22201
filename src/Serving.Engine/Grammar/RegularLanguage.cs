namespace Serving.Engine.Grammar;

/// Questions about the languages of rule-free grammar expressions (regular ones: what RegexParser and the JSON string
/// pieces build), answered on their NFAs.
internal static class RegularLanguage
{
    /// Node pairs an intersection search visits, or rules Except makes, at most; past it the question is refused as too
    /// costly.
    public const int MaxPairs = 1_000_000;

    /// The language but the given words (byte strings), as rules added to `into`: the language's NFA read as a
    /// right-linear grammar (a rule a node), walked beside the words' trie while the text read is a prefix of some word;
    /// a byte that leaves the trie goes on in the language's own rule. Returns the start's rule.
    public static GrammarExpr Except(GrammarExpr language, IEnumerable<byte[]> words, GrammarRules into, string name)
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

        var rules = new GrammarRules();
        var only = rules.Declare(name);
        rules.Define(only, language);
        var nfa = new Nfa(rules);
        var end = nfa.RuleEnd(only);
        var plain = new Dictionary<int, int>();                  // NFA node -> its rule: the language from there
        var paired = new Dictionary<(int Node, int Trie), int>();   // (NFA node, trie node) -> the language from there but the words' rests
        var pending = new Stack<(int Node, int Trie)>();          // Trie -1: a plain rule
        int Rule(int node, int trieNode)
        {
            if (trieNode < 0 ? plain.TryGetValue(node, out var rule) : paired.TryGetValue((node, trieNode), out rule)) return rule;
            if (plain.Count + paired.Count >= MaxPairs) throw new GrammarException("the patterns are too complex to combine");
            rule = into.Declare($"{name}@{node}/{trieNode}");
            if (trieNode < 0) plain[node] = rule; else paired[(node, trieNode)] = rule;
            pending.Push((node, trieNode));
            return rule;
        }
        var start = Rule(nfa.RuleStart(only), 0);
        while (pending.TryPop(out var state))
        {
            var (node, trieNode) = state;
            var alternatives = new List<GrammarExpr>();
            if (node == end && (trieNode < 0 || !trie[trieNode].IsWord)) alternatives.Add(GrammarExpr.Empty);
            foreach (var target in nfa.Epsilons(node)) alternatives.Add(new RuleExpr(Rule(target, trieNode)));
            foreach (var (range, target) in nfa.ByteEdges(node))
            {
                if (trieNode < 0)
                {
                    alternatives.Add(GrammarExpr.Sequence(new ByteSetExpr([range]), new RuleExpr(Rule(target, -1))));
                    continue;
                }
                var children = trie[trieNode].Children.Keys.Where(b => range.Lo <= b && b <= range.Hi).Order().ToList();
                foreach (var b in children)
                    alternatives.Add(GrammarExpr.Sequence(GrammarExpr.Bytes(b, b), new RuleExpr(Rule(target, trie[trieNode].Children[b]))));
                var lo = (int)range.Lo;
                var rest = new List<ByteRange>();
                foreach (var b in children)
                {
                    if (b > lo) rest.Add(new ByteRange((byte)lo, (byte)(b - 1)));
                    lo = b + 1;
                }
                if (lo <= range.Hi) rest.Add(new ByteRange((byte)lo, range.Hi));
                if (rest.Count > 0) alternatives.Add(GrammarExpr.Sequence(new ByteSetExpr(rest), new RuleExpr(Rule(target, -1))));
            }
            into.Define(trieNode < 0 ? plain[node] : paired[(node, trieNode)], new ChoiceExpr(alternatives));
        }
        return new RuleExpr(start);
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
