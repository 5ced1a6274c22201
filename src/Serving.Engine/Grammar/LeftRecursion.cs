namespace Serving.Engine.Grammar;

/// Finds a rule that can call itself before writing a byte (`expr ::= expr "+" term`, or through other rules): the
/// automaton matches top-down, so such a rule would only recurse. Refused with the cycle named.
internal static class LeftRecursion
{
    public static void Refuse(GrammarRules rules)
    {
        var nullable = Nullable(rules);
        var calls = Enumerable.Range(0, rules.Count).Select(r => LeadingCalls(rules.Body(r), nullable).Distinct().ToList()).ToList();
        var state = new int[rules.Count];   // 0 unvisited, 1 on the path, 2 done
        var path = new List<int>();
        for (var rule = 0; rule < rules.Count; rule++) Visit(rule);

        void Visit(int rule)
        {
            if (state[rule] == 2) return;
            if (state[rule] == 1)
            {
                var cycle = path.Skip(path.IndexOf(rule)).Append(rule).Select(rules.Name);
                throw new GrammarException($"invalid grammar: rule '{rules.Name(rule)}' is left-recursive ({string.Join(" -> ", cycle)}); " +
                    "write it with repetition, e.g. expr ::= term (\"+\" term)*");
            }
            state[rule] = 1;
            path.Add(rule);
            foreach (var callee in calls[rule]) Visit(callee);
            path.RemoveAt(path.Count - 1);
            state[rule] = 2;
        }
    }

    /// Which rules can match the empty text (a fixed point: a rule is nullable once its body is).
    static bool[] Nullable(GrammarRules rules)
    {
        var nullable = new bool[rules.Count];
        for (var changed = true; changed;)
        {
            changed = false;
            for (var rule = 0; rule < rules.Count; rule++)
                if (!nullable[rule] && IsNullable(rules.Body(rule), nullable)) nullable[rule] = changed = true;
        }
        return nullable;
    }

    static bool IsNullable(GrammarExpr expr, bool[] nullable) => expr switch
    {
        ByteSetExpr => false,
        SequenceExpr sequence => sequence.Items.All(item => IsNullable(item, nullable)),
        ChoiceExpr choice => choice.Alternatives.Any(item => IsNullable(item, nullable)),
        RepeatExpr repeat => repeat.Min == 0 || IsNullable(repeat.Item, nullable),
        RuleExpr rule => nullable[rule.Rule],
        _ => throw new InvalidOperationException($"unknown grammar expression {expr.GetType().Name}"),
    };

    /// The rules an expression may call before it has written a byte.
    static IEnumerable<int> LeadingCalls(GrammarExpr expr, bool[] nullable)
    {
        switch (expr)
        {
            case RuleExpr rule:
                yield return rule.Rule;
                break;
            case SequenceExpr sequence:
                foreach (var item in sequence.Items)
                {
                    foreach (var callee in LeadingCalls(item, nullable)) yield return callee;
                    if (!IsNullable(item, nullable)) break;
                }
                break;
            case ChoiceExpr choice:
                foreach (var callee in choice.Alternatives.SelectMany(item => LeadingCalls(item, nullable))) yield return callee;
                break;
            case RepeatExpr repeat:
                foreach (var callee in LeadingCalls(repeat.Item, nullable)) yield return callee;
                break;
        }
    }
}
