namespace Serving.Engine.Templates.Jinja;

// Filters over sequences: join, map, select/reject(attr), sort, dictsort, unique, min, max, sum.
internal static partial class Filters
{
    static JinjaValue ApplyCollectionFilter(string name, JinjaValue value, CallArgs args) => name switch
    {
        "join" => Str(string.Join(S(args.Get(0, "d") ?? StringValue.Empty), ItemsOrAttribute(value, args.Get(1, "attribute")).Select(S))),
        "map" => new ListValue(Map(value, args)),
        "select" => new ListValue(ItemsUnlessFalsy(value).Where(item => PassesTest(item, args, 0)).ToList()),
        "reject" => new ListValue(ItemsUnlessFalsy(value).Where(item => !PassesTest(item, args, 0)).ToList()),
        "selectattr" => new ListValue(ItemsUnlessFalsy(value).Where(item => PassesAttributeTest(item, args)).ToList()),
        "rejectattr" => new ListValue(ItemsUnlessFalsy(value).Where(item => !PassesAttributeTest(item, args)).ToList()),
        "sort" => new ListValue(Sort(value, args)),
        "dictsort" => new ListValue(DictSort(value, args)),
        "unique" => new ListValue(Unique(value, args)),
        "min" => Extreme(value, args, pickLarger: false),
        "max" => Extreme(value, args, pickLarger: true),
        "sum" => ItemsOrAttribute(value, args.Get(0, "attribute"))
            .Aggregate(args.Get(1, "start") ?? new IntValue(0), (total, item) => Operators.Binary("+", total, item)),
        _ => throw new JinjaRuntimeError($"no filter named '{name}'"),
    };

    /// make_attrgetter: "a.b.0" walks items/attributes one dotted part at a time.
    static JinjaValue Attribute(JinjaValue item, JinjaValue path)
    {
        if (path is not StringValue s) return Members.GetItem(item, path);
        foreach (var part in s.Value.Split('.'))
            item = Members.GetItem(item, long.TryParse(part, out var index) ? new IntValue(index) : new StringValue(part));
        return item;
    }

    static IEnumerable<JinjaValue> ItemsOrAttribute(JinjaValue value, JinjaValue? attribute) =>
        attribute is null or NoneValue ? Sequences.Iterate(value) : Sequences.Iterate(value).Select(item => Attribute(item, attribute));

    /// map, select, reject, selectattr and rejectattr take nothing from a falsy value (none, false, 0), as jinja2's do
    /// (`if value:` before iterating): `tools | selectattr(...)` with tools none is an empty list, not an error.
    static IReadOnlyList<JinjaValue> ItemsUnlessFalsy(JinjaValue value) => value.IsTruthy ? Sequences.Iterate(value) : [];

    /// map(attribute="x", default=d) or map("filter", args...).
    static List<JinjaValue> Map(JinjaValue value, CallArgs args)
    {
        if (args.Get(-1, "attribute") is { } attribute)
        {
            var fallback = args.Get(-1, "default");
            JinjaValue Pick(JinjaValue item)
            {
                var found = Attribute(item, attribute);
                return found is UndefinedValue && fallback is not null ? fallback : found;
            }
            return ItemsUnlessFalsy(value).Select(Pick).ToList();
        }
        if (args.Positional.Count == 0 || args.Positional[0] is not StringValue filter)
            throw new JinjaRuntimeError("map needs a filter name or attribute=");
        var rest = new CallArgs(args.Positional.Skip(1).ToList(), args.Named);
        return ItemsUnlessFalsy(value).Select(item => Apply(filter.Value, item, rest)).ToList();
    }

    /// select("test", args...) / reject: without a test name, truthiness decides.
    static bool PassesTest(JinjaValue item, CallArgs args, int testIndex)
    {
        if (args.Positional.Count <= testIndex) return item.IsTruthy;
        if (args.Positional[testIndex] is not StringValue test) throw new JinjaRuntimeError("test name must be a string");
        var testArgs = new CallArgs(args.Positional.Skip(testIndex + 1).ToList(), []);
        return Predicates.Test(test.Value, item, testArgs);
    }

    static bool PassesAttributeTest(JinjaValue item, CallArgs args)
    {
        var attribute = args.Positional.Count > 0 ? args.Positional[0] : throw new JinjaRuntimeError("selectattr needs an attribute name");
        return PassesTest(Attribute(item, attribute), args, 1);
    }

    static JinjaValue SortKey(JinjaValue item, bool caseSensitive) =>
        !caseSensitive && item is StringValue s ? new StringValue(s.Value.ToLowerInvariant()) : item;

    static List<JinjaValue> Sort(JinjaValue value, CallArgs args)
    {
        var reverse = args.Get(0, "reverse")?.IsTruthy ?? false;
        var caseSensitive = args.Get(1, "case_sensitive")?.IsTruthy ?? false;
        var attribute = args.Get(2, "attribute");
        var keyed = Sequences.Iterate(value)
            .Select(item => (Item: item, Key: SortKey(attribute is null ? item : Attribute(item, attribute), caseSensitive)))
            .ToList();
        var sorted = reverse
            ? keyed.OrderByDescending(p => p.Key, Comparisons.PythonOrder)
            : keyed.OrderBy(p => p.Key, Comparisons.PythonOrder);
        return sorted.Select(p => p.Item).ToList();
    }

    static List<JinjaValue> DictSort(JinjaValue value, CallArgs args)
    {
        if (value is not DictValue dict) throw new JinjaRuntimeError($"dictsort needs a mapping, got {value.TypeName}");
        var caseSensitive = args.Get(0, "case_sensitive")?.IsTruthy ?? false;
        var byValue = (args.Get(1, "by") as StringValue)?.Value switch
        {
            null or "key" => false,
            "value" => true,
            _ => throw new JinjaRuntimeError("dictsort: you can only sort by either 'key' or 'value'"),
        };
        var reverse = args.Get(2, "reverse")?.IsTruthy ?? false;
        var pairs = Members.Items(dict).Items;
        JinjaValue Key(JinjaValue pair) => SortKey(((ListValue)pair).Items[byValue ? 1 : 0], caseSensitive);
        var sorted = reverse ? pairs.OrderByDescending(Key, Comparisons.PythonOrder) : pairs.OrderBy(Key, Comparisons.PythonOrder);
        return sorted.ToList();
    }

    static List<JinjaValue> Unique(JinjaValue value, CallArgs args)
    {
        var caseSensitive = args.Get(0, "case_sensitive")?.IsTruthy ?? false;
        var attribute = args.Get(1, "attribute");
        var seen = new List<JinjaValue>();
        var result = new List<JinjaValue>();
        foreach (var item in Sequences.Iterate(value))
        {
            var key = SortKey(attribute is null ? item : Attribute(item, attribute), caseSensitive);
            if (seen.Any(k => Comparisons.AreEqual(k, key))) continue;
            seen.Add(key);
            result.Add(item);
        }
        return result;
    }

    static JinjaValue Extreme(JinjaValue value, CallArgs args, bool pickLarger)
    {
        var caseSensitive = args.Get(0, "case_sensitive")?.IsTruthy ?? false;
        var attribute = args.Get(1, "attribute");
        JinjaValue? best = null, bestKey = null;
        foreach (var item in Sequences.Iterate(value))
        {
            var key = SortKey(attribute is null ? item : Attribute(item, attribute), caseSensitive);
            if (best is null || Comparisons.Order(key, bestKey!) * (pickLarger ? 1 : -1) > 0) (best, bestKey) = (item, key);
        }
        return best ?? new UndefinedValue(pickLarger ? "max" : "min");
    }
}
