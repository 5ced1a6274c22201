using System.Text;

namespace Serving.Engine.Grammar;

/// A grammar over bytes, as a tree: what the JSON Schema, regex and choice compilers produce and the NFA
/// builder reads. Text is always UTF-8 bytes here, so a token that ends inside a character is just a prefix.
internal abstract record GrammarExpr
{
    public static readonly GrammarExpr Empty = new SequenceExpr([]);

    /// The UTF-8 bytes of text, in order.
    public static GrammarExpr Literal(string text) =>
        Sequence(Encoding.UTF8.GetBytes(text).Select(b => (GrammarExpr)new ByteSetExpr([new ByteRange(b, b)])).ToArray());

    public static GrammarExpr Sequence(params GrammarExpr[] items) => items.Length == 1 ? items[0] : new SequenceExpr(items);

    public static GrammarExpr Choice(params GrammarExpr[] items) => items.Length == 1 ? items[0] : new ChoiceExpr(items);

    public static GrammarExpr Optional(GrammarExpr item) => new RepeatExpr(item, 0, 1);

    public static GrammarExpr Repeat(GrammarExpr item, int min, int? max) => new RepeatExpr(item, min, max);

    public static GrammarExpr Bytes(byte lo, byte hi) => new ByteSetExpr([new ByteRange(lo, hi)]);

    /// One byte from the ASCII characters listed, e.g. AnyOf("+-").
    public static GrammarExpr AnyOf(string asciiCharacters) =>
        new ByteSetExpr(asciiCharacters.Select(c => new ByteRange((byte)c, (byte)c)).ToArray());
}

/// An inclusive range of byte values.
internal readonly record struct ByteRange(byte Lo, byte Hi);

/// Exactly one byte from the ranges.
internal sealed record ByteSetExpr(IReadOnlyList<ByteRange> Ranges) : GrammarExpr;

internal sealed record SequenceExpr(IReadOnlyList<GrammarExpr> Items) : GrammarExpr;

/// Any one of the alternatives (an empty list matches nothing).
internal sealed record ChoiceExpr(IReadOnlyList<GrammarExpr> Alternatives) : GrammarExpr;

/// Item repeated Min..Max times (Max null: unbounded).
internal sealed record RepeatExpr(GrammarExpr Item, int Min, int? Max) : GrammarExpr;

/// The whole of another rule of the same grammar; rules make recursion ($ref cycles, nested JSON) possible.
internal sealed record RuleExpr(int Rule) : GrammarExpr;

/// Rules of a grammar, the first being where a text starts. A rule is declared before its body is known, so
/// that rules may refer to each other (and to themselves).
internal sealed class GrammarRules
{
    readonly List<GrammarExpr?> _bodies = [];
    readonly List<string> _names = [];

    public int Count => _bodies.Count;

    public int Declare(string name)
    {
        _bodies.Add(null);
        _names.Add(name);
        return _bodies.Count - 1;
    }

    public void Define(int rule, GrammarExpr body) => _bodies[rule] = body;

    public GrammarExpr Body(int rule) =>
        _bodies[rule] ?? throw new InvalidOperationException($"grammar rule '{_names[rule]}' was declared but never defined");

    public string Name(int rule) => _names[rule];
}
