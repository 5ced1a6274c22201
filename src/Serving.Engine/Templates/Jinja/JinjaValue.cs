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

/// A Python dict with string keys, in insertion order (JSON object order is kept, as json.loads does).
internal sealed class DictValue : JinjaValue
{
    readonly List<string> _keys = [];
    readonly Dictionary<string, JinjaValue> _values = new(StringComparer.Ordinal);

    public IReadOnlyList<string> Keys => _keys;
    public int Count => _keys.Count;
    public override bool IsTruthy => _keys.Count > 0;
    public override string TypeName => "dict";

    public IEnumerable<KeyValuePair<string, JinjaValue>> Entries =>
        _keys.Select(k => new KeyValuePair<string, JinjaValue>(k, _values[k]));

    public bool TryGet(string key, out JinjaValue value) => _values.TryGetValue(key, out value!);

    /// Only for building a dict (JSON conversion, literals, namespace()); templates cannot mutate dicts.
    public void Set(string key, JinjaValue value)
    {
        if (!_values.ContainsKey(key)) _keys.Add(key);
        _values[key] = value;
    }
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
