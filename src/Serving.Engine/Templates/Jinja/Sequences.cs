using System.Text;

namespace Serving.Engine.Templates.Jinja;

/// Iteration, length, indexing and slicing with Python semantics. Strings are sequences of code points
/// (as Python's str), not UTF-16 units.
internal static class Sequences
{
    public static IReadOnlyList<JinjaValue> Iterate(JinjaValue value) => value switch
    {
        ListValue l => l.Items,
        DictValue d => d.Keys,
        StringValue s => CodePoints(s.Value).Select(c => (JinjaValue)new StringValue(c)).ToList(),
        UndefinedValue => [],
        _ => throw new JinjaRuntimeError($"'{value.TypeName}' object is not iterable"),
    };

    public static int Length(JinjaValue value) => value switch
    {
        ListValue l => l.Items.Count,
        DictValue d => d.Count,
        StringValue s => CodePointCount(s.Value),
        UndefinedValue => 0,
        _ => throw new JinjaRuntimeError($"object of type '{value.TypeName}' has no len()"),
    };

    public static List<string> CodePoints(string s)
    {
        var result = new List<string>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                result.Add(s.Substring(i++, 2));
                continue;
            }
            result.Add(s[i].ToString());
        }
        return result;
    }

    static int CodePointCount(string s)
    {
        var n = s.Length;
        for (var i = 0; i + 1 < s.Length; i++)
            if (char.IsHighSurrogate(s[i]) && char.IsLowSurrogate(s[i + 1])) n--;
        return n;
    }

    /// seq[index] with negative indexes from the end; out of range gives Undefined, as jinja2 does.
    public static JinjaValue Index(JinjaValue seq, long index)
    {
        if (seq is StringValue s)
        {
            var chars = CodePoints(s.Value);
            var i = index < 0 ? index + chars.Count : index;
            return i >= 0 && i < chars.Count ? new StringValue(chars[(int)i]) : new UndefinedValue($"[{index}]");
        }
        var items = ((ListValue)seq).Items;
        var at = index < 0 ? index + items.Count : index;
        return at >= 0 && at < items.Count ? items[(int)at] : new UndefinedValue($"[{index}]");
    }

    public static JinjaValue Slice(JinjaValue seq, long? start, long? stop, long? step)
    {
        switch (seq)
        {
            case StringValue s:
                var sb = new StringBuilder();
                foreach (var c in Pick(CodePoints(s.Value), start, stop, step)) sb.Append(c);
                return new StringValue(sb.ToString());
            case ListValue l:
                return new ListValue(Pick(l.Items, start, stop, step).ToList(), l.IsTuple);
            case UndefinedValue u:
                throw new JinjaRuntimeError($"'{u.Name}' is undefined");
            default:
                throw new JinjaRuntimeError($"'{seq.TypeName}' object is not subscriptable");
        }
    }

    /// Python's slice.indices: clamp start/stop into range for the step's direction.
    static IEnumerable<T> Pick<T>(IReadOnlyList<T> items, long? start, long? stop, long? step)
    {
        var n = (long)items.Count;
        var st = step ?? 1;
        if (st == 0) throw new JinjaRuntimeError("slice step cannot be zero");
        long Clamp(long? value, long whenMissing, long low, long high)
        {
            if (value is not long v) return whenMissing;
            if (v < 0) v += n;
            return Math.Clamp(v, low, high);
        }
        if (st > 0)
        {
            for (var i = Clamp(start, 0, 0, n); i < Clamp(stop, n, 0, n); i += st) yield return items[(int)i];
        }
        else
        {
            for (var i = Clamp(start, n - 1, -1, n - 1); i > Clamp(stop, -1, -1, n - 1); i += st) yield return items[(int)i];
        }
    }
}
