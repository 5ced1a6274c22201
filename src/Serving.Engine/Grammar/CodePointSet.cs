using System.Text;

namespace Serving.Engine.Grammar;

/// A set of Unicode scalar values as sorted, disjoint, non-adjacent inclusive ranges, and its UTF-8 form.
internal sealed class CodePointSet
{
    public const int MaxCodePoint = 0x10FFFF;

    public static readonly CodePointSet All = new([(0, MaxCodePoint)]);

    readonly List<(int Lo, int Hi)> _ranges;

    CodePointSet(List<(int Lo, int Hi)> ranges) => _ranges = ranges;

    public IReadOnlyList<(int Lo, int Hi)> Ranges => _ranges;

    public bool IsEmpty => _ranges.Count == 0;

    public static CodePointSet Of(IEnumerable<(int Lo, int Hi)> ranges)
    {
        var sorted = ranges.Where(r => r.Lo <= r.Hi).OrderBy(r => r.Lo).ToList();
        var merged = new List<(int Lo, int Hi)>();
        foreach (var (lo, hi) in sorted)
        {
            if (merged.Count > 0 && lo <= merged[^1].Hi + 1)
                merged[^1] = (merged[^1].Lo, Math.Max(merged[^1].Hi, hi));
            else
                merged.Add((lo, hi));
        }
        return new CodePointSet(merged);
    }

    public static CodePointSet Single(int codePoint) => new([(codePoint, codePoint)]);

    public CodePointSet Union(CodePointSet other) => Of(_ranges.Concat(other._ranges));

    public CodePointSet Complement()
    {
        var result = new List<(int, int)>();
        var next = 0;
        foreach (var (lo, hi) in _ranges)
        {
            if (lo > next) result.Add((next, lo - 1));
            next = hi + 1;
        }
        if (next <= MaxCodePoint) result.Add((next, MaxCodePoint));
        return new CodePointSet(result);
    }

    public CodePointSet Minus(CodePointSet other) => Of(Complement().Union(other).Complement()._ranges);

    public bool Contains(int codePoint) => _ranges.Any(r => r.Lo <= codePoint && codePoint <= r.Hi);

    /// One character of the set as UTF-8: an alternation of byte-range sequences (surrogates are not
    /// characters and are left out).
    public GrammarExpr ToUtf8()
    {
        var alternatives = new List<GrammarExpr>();
        foreach (var (lo, hi) in _ranges)
        {
            foreach (var (a, b) in SplitAround(lo, hi, 0xD800, 0xDFFF))
                foreach (var (x, y) in SplitByLength(a, b))
                    AddSameLength(x, y, alternatives);
        }
        return alternatives.Count == 1 ? alternatives[0] : new ChoiceExpr(alternatives);
    }

    static IEnumerable<(int, int)> SplitAround(int lo, int hi, int gapLo, int gapHi)
    {
        if (hi < gapLo || lo > gapHi)
        {
            yield return (lo, hi);
            yield break;
        }
        if (lo < gapLo) yield return (lo, gapLo - 1);
        if (hi > gapHi) yield return (gapHi + 1, hi);
    }

    static IEnumerable<(int, int)> SplitByLength(int lo, int hi)
    {
        foreach (var max in new[] { 0x7F, 0x7FF, 0xFFFF, MaxCodePoint })
        {
            if (lo > hi) yield break;
            if (lo <= max)
            {
                yield return (lo, Math.Min(hi, max));
                lo = max + 1;
            }
        }
    }

    /// lo..hi encode to the same number of bytes. Split until every byte position varies independently
    /// (the construction of Go's regexp/syntax and Rust's utf8-ranges), then emit one range per byte.
    static void AddSameLength(int lo, int hi, List<GrammarExpr> output)
    {
        var length = Encoding.UTF8.GetByteCount(char.ConvertFromUtf32(lo));
        for (var i = 1; i < length; i++)
        {
            var mask = (1 << (6 * i)) - 1;
            if ((lo & ~mask) == (hi & ~mask)) continue;
            if ((lo & mask) != 0)
            {
                AddSameLength(lo, lo | mask, output);
                AddSameLength((lo | mask) + 1, hi, output);
                return;
            }
            if ((hi & mask) != mask)
            {
                AddSameLength(lo, (hi & ~mask) - 1, output);
                AddSameLength(hi & ~mask, hi, output);
                return;
            }
        }
        var loBytes = Encoding.UTF8.GetBytes(char.ConvertFromUtf32(lo));
        var hiBytes = Encoding.UTF8.GetBytes(char.ConvertFromUtf32(hi));
        output.Add(GrammarExpr.Sequence(loBytes.Select((b, k) => GrammarExpr.Bytes(b, hiBytes[k])).ToArray()));
    }
}
