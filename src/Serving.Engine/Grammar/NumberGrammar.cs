using static Serving.Engine.Grammar.GrammarExpr;

namespace Serving.Engine.Grammar;

/// JSON numbers as byte grammars, with ranges: integers in [min, max] exactly (either bound may be open), and
/// numbers between whole-number bounds. Digit strings never have leading zeros, as JSON requires. Digits are
/// bounded by what a 64-bit integer or a double carries (MaxIntegerDigits, MaxFractionDigits, MaxExponentDigits),
/// so that a model cannot spend its whole budget on one number.
internal static class NumberGrammar
{
    public const int MaxIntegerDigits = 19;
    public const int MaxFractionDigits = 16;
    public const int MaxExponentDigits = 3;

    static readonly GrammarExpr Digit = Bytes((byte)'0', (byte)'9');
    static readonly GrammarExpr NonZeroDigit = Bytes((byte)'1', (byte)'9');
    static readonly GrammarExpr Fraction = Optional(Sequence(Literal("."), Repeat(Digit, 1, MaxFractionDigits)));
    static readonly GrammarExpr ZeroFraction = Optional(Sequence(Literal("."), Repeat(Literal("0"), 1, MaxFractionDigits)));
    static readonly GrammarExpr Exponent = Optional(Sequence(AnyOf("eE"), Optional(AnyOf("+-")), Repeat(Digit, 1, MaxExponentDigits)));

    /// Bounds beyond this are refused (they would not survive a round trip through a double anyway).
    public const long MaxBound = 1_000_000_000_000_000;

    /// Any JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    public static GrammarExpr AnyNumber() => Sequence(Optional(Literal("-")), Magnitude(0, null, Empty), Fraction, Exponent);

    /// Integers n with min <= n <= max (null: unbounded on that side).
    public static GrammarExpr Integer(long? min, long? max)
    {
        var alternatives = new List<GrammarExpr>();
        if (min is null || min < 0)
            alternatives.Add(Sequence(Literal("-"), Magnitude(max is < 0 ? -max.Value : 1, -min, Empty)));
        if (max is null || max >= 0)
            alternatives.Add(Magnitude(Math.Max(min ?? 0, 0), max, Empty));
        return Choice([.. alternatives]);
    }

    /// Decimal numbers x with min <= x <= max, for whole-number bounds; no exponent.
    public static GrammarExpr Number(long? min, long? max)
    {
        var alternatives = new List<GrammarExpr>();
        if (min is null || min < 0)
            alternatives.Add(Sequence(Literal("-"), DecimalMagnitude(max is < 0 ? -max.Value : 0, -min)));
        if (max is null || max >= 0)
            alternatives.Add(DecimalMagnitude(Math.Max(min ?? 0, 0), max));
        return Choice([.. alternatives]);
    }

    /// Magnitudes m (digits, optional fraction) with lo <= m <= hi: any fraction below hi, only zeros at hi.
    static GrammarExpr DecimalMagnitude(long lo, long? hi)
    {
        if (hi is not { } top) return Sequence(Magnitude(lo, null, Empty), Fraction);
        var alternatives = new List<GrammarExpr>();
        if (lo <= top - 1) alternatives.Add(Sequence(Magnitude(lo, top - 1, Empty), Fraction));
        alternatives.Add(Sequence(Literal(top.ToString()), ZeroFraction));
        return Choice([.. alternatives]);
    }

    /// Whole numbers lo..hi (hi null: no upper bound) without sign, then tail.
    static GrammarExpr Magnitude(long lo, long? hi, GrammarExpr tail)
    {
        var alternatives = new List<GrammarExpr>();
        var loLength = lo.ToString().Length;
        var hiLength = hi is { } h ? h.ToString().Length : loLength;
        for (var length = loLength; length <= hiLength; length++)
        {
            var first = Math.Max(lo, length == 1 ? 0 : Pow10(length - 1));
            var last = Math.Min(hi ?? long.MaxValue, Pow10(length) - 1);
            if (first <= last) alternatives.Add(SameLength(first.ToString(), last.ToString()));
        }
        if (hi is null && loLength < MaxIntegerDigits)
            alternatives.Add(Sequence(NonZeroDigit, Repeat(Digit, loLength, MaxIntegerDigits - 1)));
        return Sequence(Choice([.. alternatives]), tail);
    }

    /// Digit strings of one length between lo and hi (which have that length): for 123..456,
    /// 12[3-9] | 1[3-9]d | [2-3]dd | 4[0-4]d | 45[0-6].
    static GrammarExpr SameLength(string lo, string hi)
    {
        if (lo.Length == 0) return Empty;
        if (lo == hi) return Literal(lo);
        if (lo[0] == hi[0]) return Sequence(Literal(lo[..1]), SameLength(lo[1..], hi[1..]));
        var rest = lo.Length - 1;
        if (lo[1..].All(c => c == '0') && hi[1..].All(c => c == '9'))
            return Sequence(Bytes((byte)lo[0], (byte)hi[0]), Repeat(Digit, rest, rest));
        var alternatives = new List<GrammarExpr> { Sequence(Literal(lo[..1]), SameLength(lo[1..], new string('9', rest))) };
        if (hi[0] - lo[0] > 1) alternatives.Add(Sequence(Bytes((byte)(lo[0] + 1), (byte)(hi[0] - 1)), Repeat(Digit, rest, rest)));
        alternatives.Add(Sequence(Literal(hi[..1]), SameLength(new string('0', rest), hi[1..])));
        return Choice([.. alternatives]);
    }

    static long Pow10(int exponent)
    {
        var value = 1L;
        for (var i = 0; i < exponent; i++) value = value > long.MaxValue / 10 ? long.MaxValue : value * 10;
        return value;
    }
}
