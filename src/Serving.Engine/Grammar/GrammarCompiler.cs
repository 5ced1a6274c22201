using System.Diagnostics;

namespace Serving.Engine.Grammar;

/// Turns StructuredOutputsParams into a GrammarAutomaton, once per distinct constraint: a process-wide cache
/// keyed by the constraint's text (the automaton knows nothing of tokenizers, so every engine shares it),
/// least recently used first out beyond Capacity. Thread-safe.
internal static class GrammarCompiler
{
    public const int Capacity = 256;

    /// An automaton that has interned more configurations than this (a free-form grammar met many distinct
    /// nestings) is compiled afresh for new requests; requests already using it keep it until they end.
    public const int MaxConfigurations = 100_000;

    static readonly object Gate = new();
    static readonly Dictionary<string, LinkedListNode<(string Key, GrammarAutomaton Automaton)>> Entries = [];
    static readonly LinkedList<(string Key, GrammarAutomaton Automaton)> Recency = new();

    /// Throws InvalidRequestException (param "structured_outputs") for a constraint that cannot be compiled.
    public static GrammarAutomaton Compile(StructuredOutputsParams spec)
    {
        var key = spec.Key;
        lock (Gate)
        {
            if (Entries.TryGetValue(key, out var hit) && hit.Value.Automaton.NumConfigurations > MaxConfigurations)
            {
                Entries.Remove(key);
                Recency.Remove(hit);
            }
            else if (hit is not null)
            {
                Recency.Remove(hit);
                Recency.AddFirst(hit);
                return hit.Value.Automaton;
            }
        }
        var automaton = Build(spec);
        lock (Gate)
        {
            if (Entries.TryGetValue(key, out var raced)) return raced.Value.Automaton;
            Entries[key] = Recency.AddFirst((key, automaton));
            if (Recency.Count > Capacity)
            {
                Entries.Remove(Recency.Last!.Value.Key);
                Recency.RemoveLast();
            }
        }
        return automaton;
    }

    static GrammarAutomaton Build(StructuredOutputsParams spec)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var (rules, root, kind) = spec switch
            {
                { Json: { } schema } => With(JsonSchemaCompiler.Compile(schema), "json"),
                { JsonObject: true } => With(JsonSchemaCompiler.AnyObject(), "json_object"),
                { Regex: { } pattern } => With(Single(RegexParser.Parse(pattern)), "regex"),
                { Grammar: { } grammar } => With(EbnfParser.Parse(grammar), "grammar"),
                _ => With(Single(ChoiceGrammar(spec.Choice!)), "choice"),
            };
            if (spec.ThinksUntil is { } tag) (root, kind) = (AfterThinking(rules, root, tag), "thinking, then " + kind);
            var nfa = new Nfa(rules);
            var automaton = new GrammarAutomaton(nfa, root, $"{kind}, {nfa.NumNodes} states");
            automaton.CompileTime = Stopwatch.GetElapsedTime(started);
            return automaton;
        }
        catch (GrammarException error)
        {
            throw new InvalidRequestException(error.Message, "structured_outputs");
        }
        catch (InsufficientExecutionStackException)
        {
            throw new InvalidRequestException("the constraint nests too deeply to compile", "structured_outputs");
        }
        catch (Exception error) when (error is InvalidOperationException or FormatException or ArgumentException)
        {
            // a JSON value of an unexpected kind deep in a schema: the schema's fault, said in its words
            throw new InvalidRequestException($"the constraint cannot be compiled: {error.Message}", "structured_outputs");
        }
    }

    static (GrammarRules, int, string) With((GrammarRules Rules, int Root) grammar, string kind) => (grammar.Rules, grammar.Root, kind);

    /// A new root: the thinking up to its end tag (ThoughtGrammar), then the constraint's root.
    static int AfterThinking(GrammarRules rules, int root, string tag)
    {
        var thinkingFirst = rules.Declare("thinking_then_root");
        rules.Define(thinkingFirst, GrammarExpr.Sequence(ThoughtGrammar.UpTo(tag), new RuleExpr(root)));
        return thinkingFirst;
    }

    static (GrammarRules, int) Single(GrammarExpr body)
    {
        var rules = new GrammarRules();
        var root = rules.Declare("root");
        rules.Define(root, body);
        return (rules, root);
    }

    static GrammarExpr ChoiceGrammar(IReadOnlyList<string> choices)
    {
        if (choices.Count == 0) throw new GrammarException("choice must list at least one string");
        return GrammarExpr.Choice([.. choices.Distinct().Select(GrammarExpr.Literal)]);
    }
}
