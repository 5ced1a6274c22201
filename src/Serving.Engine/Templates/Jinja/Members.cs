namespace Serving.Engine.Templates.Jinja;

/// obj.name and obj[key] as jinja2 resolves them: for ".", a method of the value first, then its item;
/// for "[]", the item first, then a method. A missing member is Undefined; only a member of Undefined fails.
/// Methods exist only for str (StringMethods) and dict (items, keys, values, get); nothing can mutate.
internal static class Members
{
    static readonly HashSet<string> DictMethods = ["items", "keys", "values", "get"];

    public static JinjaValue GetAttribute(JinjaValue target, string name)
    {
        Operators.FailIfUndefined(target);
        return (JinjaValue?)Method(target, name) ?? Item(target, name) ?? new UndefinedValue(name);
    }

    public static JinjaValue GetItem(JinjaValue target, JinjaValue key)
    {
        Operators.FailIfUndefined(target);
        if (key is StringValue name)
            return Item(target, name.Value) ?? (JinjaValue?)Method(target, name.Value) ?? new UndefinedValue(name.Value);
        if (target is DictValue dict) return dict.TryGet(key, out var value) ? value : new UndefinedValue(PyFormat.Repr(key));
        if (Operators.AsInteger(key) is long index && target is ListValue or StringValue) return Sequences.Index(target, index);
        return new UndefinedValue(PyFormat.Repr(key));
    }

    static JinjaValue? Item(JinjaValue target, string name) => target switch
    {
        DictValue d => d.TryGet(name, out var value) ? value : null,
        NamespaceValue n => n.Attributes.TryGet(name, out var value) ? value : null,
        LoopValue loop => loop.Get(name),
        _ => null,
    };

    static CallableValue? Method(JinjaValue target, string name) => target switch
    {
        DictValue d when DictMethods.Contains(name) => new CallableValue(name, args => DictMethod(d, name, args)),
        StringValue s when StringMethods.Has(name) => new CallableValue(name, args => StringMethods.Call(s.Value, name, args)),
        _ => null,
    };

    static JinjaValue DictMethod(DictValue dict, string name, CallArgs args) => name switch
    {
        "items" => Items(dict),
        "keys" => new ListValue(dict.Keys),
        "values" => new ListValue(dict.Entries.Select(e => e.Value).ToList()),
        _ => Get(dict, args),
    };

    static JinjaValue Get(DictValue dict, CallArgs args)
    {
        var fallback = args.Get(1, "default") ?? NoneValue.Instance;
        return args.Get(0, "key") is { } key && dict.TryGet(key, out var value) ? value : fallback;
    }

    /// dict.items() and the items filter: a list of (key, value) tuples.
    public static ListValue Items(DictValue dict) =>
        new(dict.Entries.Select(e => (JinjaValue)new ListValue([e.Key, e.Value], isTuple: true)).ToList());
}
