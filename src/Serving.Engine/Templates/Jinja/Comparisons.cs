namespace Serving.Engine.Templates.Jinja;

/// ==, ordering and "in" with Python semantics: deep equality of lists and dicts, 1 == 1.0 == True,
/// Undefined equal only to Undefined, ordering only between numbers, strings or lists.
internal static class Comparisons
{
    public static bool Compare(string op, JinjaValue left, JinjaValue right) => op switch
    {
        "==" => AreEqual(left, right),
        "!=" => !AreEqual(left, right),
        "in" => Contains(right, left),
        "not in" => !Contains(right, left),
        "<" => Order(left, right, op) < 0,
        "<=" => Order(left, right, op) <= 0,
        ">" => Order(left, right, op) > 0,
        ">=" => Order(left, right, op) >= 0,
        _ => throw new JinjaRuntimeError($"unknown comparison '{op}'"),
    };

    /// Python's sort order (Order) as a comparer: sorted(), dictsort, json.dumps(sort_keys=True).
    public static readonly IComparer<JinjaValue> PythonOrder = Comparer<JinjaValue>.Create((x, y) => Order(x, y));

    public static bool AreEqual(JinjaValue a, JinjaValue b)
    {
        if (ReferenceEquals(a, b)) return true;
        if (Operators.AsNumber(a) is double x && Operators.AsNumber(b) is double y)
            return Operators.AsInteger(a) is long i && Operators.AsInteger(b) is long j ? i == j : x == y;
        return (a, b) switch
        {
            (StringValue s, StringValue t) => s.Value == t.Value,
            (ListValue l, ListValue m) => l.IsTuple == m.IsTuple && l.Items.Count == m.Items.Count
                && l.Items.Zip(m.Items).All(p => AreEqual(p.First, p.Second)),
            (DictValue d, DictValue e) => DictsEqual(d, e),
            (NoneValue, NoneValue) or (UndefinedValue, UndefinedValue) => true,
            _ => false,
        };
    }

    static bool DictsEqual(DictValue d, DictValue e)
    {
        if (d.Count != e.Count) return false;
        foreach (var (key, value) in d.Entries)
            if (!e.TryGet(key, out var other) || !AreEqual(value, other)) return false;
        return true;
    }

    public static bool Contains(JinjaValue container, JinjaValue item) => container switch
    {
        StringValue s when item is StringValue t => s.Value.Contains(t.Value, StringComparison.Ordinal),
        StringValue => throw new JinjaRuntimeError($"'in <string>' requires string as left operand, not {item.TypeName}"),
        DictValue d => d.TryGet(item, out _),
        ListValue l => l.Items.Any(x => AreEqual(x, item)),
        UndefinedValue => false,
        _ => throw new JinjaRuntimeError($"argument of type '{container.TypeName}' is not iterable"),
    };

    public static int Order(JinjaValue a, JinjaValue b, string op = "<")
    {
        if (Operators.AsNumber(a) is double x && Operators.AsNumber(b) is double y)
            return Operators.AsInteger(a) is long i && Operators.AsInteger(b) is long j ? i.CompareTo(j) : x.CompareTo(y);
        if (a is StringValue s && b is StringValue t) return CompareCodePoints(s.Value, t.Value);
        if (a is ListValue l && b is ListValue m)
        {
            for (var k = 0; k < Math.Min(l.Items.Count, m.Items.Count); k++)
                if (!AreEqual(l.Items[k], m.Items[k])) return Order(l.Items[k], m.Items[k], op);
            return l.Items.Count.CompareTo(m.Items.Count);
        }
        throw new JinjaRuntimeError($"'{op}' not supported between instances of '{a.TypeName}' and '{b.TypeName}'");
    }

    /// Python compares strings by code point; ordinal UTF-16 order differs only around surrogates.
    static int CompareCodePoints(string a, string b)
    {
        var x = Sequences.CodePoints(a);
        var y = Sequences.CodePoints(b);
        for (var k = 0; k < Math.Min(x.Count, y.Count); k++)
        {
            var c = CodePoint(x[k]).CompareTo(CodePoint(y[k]));
            if (c != 0) return c;
        }
        return x.Count.CompareTo(y.Count);
    }

    static int CodePoint(string s) => s.Length == 2 ? char.ConvertToUtf32(s[0], s[1]) : s[0];
}
