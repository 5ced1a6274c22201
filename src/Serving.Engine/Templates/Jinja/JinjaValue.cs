namespace Serving.Engine.Templates.Jinja;

/// A value inside the sandbox. Templates only ever see these types, built from JSON or literals;
/// nothing reaches .NET objects, so there is nothing to reflect into. Lists and dicts are immutable
/// (ImmutableSandboxedEnvironment); only namespace() objects accept attribute assignment.
internal abstract class JinjaValue
{
    /// Python truthiness.
    public abstract bool IsTruthy { get; }

    /// The Python type name, for error messages.
    public abstract string TypeName { get; }

    public override string ToString() => PyFormat.Str(this);
}

/// jinja2's default Undefined: falsy, renders empty, iterates as empty; any other use is an error.
internal sealed class UndefinedValue(string name) : JinjaValue
{
    public string Name { get; } = name;
    public override bool IsTruthy => false;
    public override string TypeName => "Undefined";
}

internal sealed class NoneValue : JinjaValue
{
    public static readonly NoneValue Instance = new();
    NoneValue() { }
    public override bool IsTruthy => false;
    public override string TypeName => "NoneType";
}

internal sealed class BoolValue : JinjaValue
{
    public static readonly BoolValue True = new(true);
    public static readonly BoolValue False = new(false);
    BoolValue(bool value) => Value = value;
    public bool Value { get; }
    public static BoolValue Of(bool value) => value ? True : False;
    public override bool IsTruthy => Value;
    public override string TypeName => "bool";
}

internal sealed class IntValue(long value) : JinjaValue
{
    public long Value { get; } = value;
    public override bool IsTruthy => Value != 0;
    public override string TypeName => "int";
}

internal sealed class FloatValue(double value) : JinjaValue
{
    public double Value { get; } = value;
    public override bool IsTruthy => Value != 0;
    public override string TypeName => "float";
}

internal sealed class StringValue(string value) : JinjaValue
{
    public static readonly StringValue Empty = new("");
    public string Value { get; } = value;
    /// markupsafe's Markup (the safe and escape filters' result): `+` with a plain string HTML-escapes that string, as
    /// Markup.__add__ and __radd__ do also where nothing autoescapes (functionary's `"..."|safe + description`). Only
    /// `+` keeps it; other operations and filters give plain strings.
    public bool IsSafe { get; init; }
    public override bool IsTruthy => Value.Length > 0;
    public override string TypeName => "str";
}

/// A Python list, or a tuple when IsTuple (only changes how it prints).
internal sealed class ListValue(IReadOnlyList<JinjaValue> items, bool isTuple = false) : JinjaValue
{
    public static readonly ListValue Empty = new([]);
    public IReadOnlyList<JinjaValue> Items { get; } = items;
    public bool IsTuple { get; } = isTuple;
    public override bool IsTruthy => Items.Count > 0;
    public override string TypeName => IsTuple ? "tuple" : "list";
}

/// A Python dict in insertion order (JSON object order is kept, as json.loads does). Keys are any hashable value,
/// equal as Python's are (DictKey): JSON and keyword arguments give strings, a literal may give numbers
/// (`{0: 0, 512: 128}`).
internal sealed class DictValue : JinjaValue
{
    readonly List<JinjaValue> _keys = [];
    readonly Dictionary<DictKey, JinjaValue> _values = [];

    public IReadOnlyList<JinjaValue> Keys => _keys;
    public int Count => _keys.Count;
    public override bool IsTruthy => _keys.Count > 0;
    public override string TypeName => "dict";

    public IEnumerable<KeyValuePair<JinjaValue, JinjaValue>> Entries =>
        _keys.Select(k => new KeyValuePair<JinjaValue, JinjaValue>(k, _values[new DictKey(k)]));

    /// False also for a key no dict can hold (a list, Undefined), as jinja2's lookups give Undefined for one.
    public bool TryGet(JinjaValue key, out JinjaValue value)
    {
        value = null!;
        return DictKey.IsHashable(key) && _values.TryGetValue(new DictKey(key), out value!);
    }

    public bool TryGet(string key, out JinjaValue value) => TryGet(new StringValue(key), out value);

    /// Only for building a dict (JSON conversion, literals, namespace()); templates cannot mutate dicts.
    public void Set(JinjaValue key, JinjaValue value)
    {
        var dictKey = new DictKey(key);
        if (!_values.ContainsKey(dictKey)) _keys.Add(key);
        _values[dictKey] = value;
    }

    public void Set(string key, JinjaValue value) => Set(new StringValue(key), value);
}

/// A dict key as Python hashes and compares it: 1, 1.0 and True are one key, strings by ordinal, tuples by their
/// items, None; lists and dicts are unhashable.
internal readonly struct DictKey : IEquatable<DictKey>
{
    readonly JinjaValue _value;
    readonly int _hash;

    public DictKey(JinjaValue value) =>
        (_value, _hash) = (value, HashOf(value) ?? throw new JinjaRuntimeError($"unhashable type: '{value.TypeName}'"));

    public bool Equals(DictKey other) => _hash == other._hash && Comparisons.AreEqual(_value, other._value);
    public override bool Equals(object? obj) => obj is DictKey other && Equals(other);
    public override int GetHashCode() => _hash;

    public static bool IsHashable(JinjaValue value) => HashOf(value) is not null;

    // Python's hash class of a key (1, 1.0 and True alike); null for a value no dict can hold
    static int? HashOf(JinjaValue value) => value switch
    {
        StringValue s => StringComparer.Ordinal.GetHashCode(s.Value),
        IntValue or FloatValue or BoolValue => Operators.AsNumber(value)!.Value.GetHashCode(),
        NoneValue => 0,
        ListValue { IsTuple: true } t => t.Items.Aggregate((int?)17, (hash, item) => HashOf(item) is { } h && hash is { } c ? HashCode.Combine(c, h) : null),
        _ => null,
    };
}

/// namespace(...): the one mutable object, so that {% set ns.x = ... %} can carry state out of a loop.
internal sealed class NamespaceValue(DictValue attributes) : JinjaValue
{
    public DictValue Attributes { get; } = attributes;
    public override bool IsTruthy => true;
    public override string TypeName => "Namespace";
}

internal sealed record CallArgs(IReadOnlyList<JinjaValue> Positional, IReadOnlyList<KeyValuePair<string, JinjaValue>> Named)
{
    public JinjaValue? Get(int index, string name)
    {
        foreach (var (key, value) in Named)
            if (key == name) return value;
        return index >= 0 && index < Positional.Count ? Positional[index] : null;
    }
}

/// A function the template may call: a global (range, namespace, raise_exception), a macro or a bound
/// method of a str/dict value or of loop.
internal sealed class CallableValue(string name, Func<CallArgs, JinjaValue> invoke) : JinjaValue
{
    public string Name { get; } = name;
    public JinjaValue Invoke(CallArgs args) => invoke(args);
    public override bool IsTruthy => true;
    public override string TypeName => "function";
}

/// A runtime error with no line yet; the evaluator adds the line of the node being evaluated.
internal sealed class JinjaRuntimeError(string message) : Exception(message);
