namespace Serving.Engine.Templates.Jinja;

/// jinja2's tests ("x is defined", "x is not none", "n is divisibleby 3"), also used by select/reject.
internal static class Predicates
{
    static readonly HashSet<string> Names =
    [
        "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string", "mapping",
        "iterable", "sequence", "callable", "lower", "upper", "odd", "even", "divisibleby", "eq", "equalto", "==", "ne",
        "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in", "sameas",
    ];

    /// Checked when parsing, as jinja2 rejects an unknown test when it compiles the template.
    public static bool Exists(string name) => Names.Contains(name);

    public static bool Test(string name, JinjaValue value, CallArgs args) => name switch
    {
        "defined" => value is not UndefinedValue,
        "undefined" => value is UndefinedValue,
        "none" => value is NoneValue,
        "boolean" => value is BoolValue,
        "true" => value is BoolValue { Value: true },
        "false" => value is BoolValue { Value: false },
        "integer" => value is IntValue,
        "float" => value is FloatValue,
        "number" => value is IntValue or FloatValue or BoolValue,
        "string" => value is StringValue,
        "mapping" => value is DictValue,
        // Undefined counts as iterable and as a sequence in jinja2 (it defines __iter__, __len__, __getitem__).
        "iterable" => value is ListValue or DictValue or StringValue or UndefinedValue,
        "sequence" => value is ListValue or DictValue or StringValue or UndefinedValue,
        "callable" => value is CallableValue,
        "lower" => value is StringValue s && s.Value == s.Value.ToLowerInvariant(),
        "upper" => value is StringValue t && t.Value == t.Value.ToUpperInvariant(),
        "odd" => Integer(value, name) % 2 != 0,
        "even" => Integer(value, name) % 2 == 0,
        "divisibleby" => Integer(value, name) % Integer(Argument(args, name), name) == 0,
        "eq" or "equalto" or "==" => Comparisons.AreEqual(value, Argument(args, name)),
        "ne" or "!=" => !Comparisons.AreEqual(value, Argument(args, name)),
        "lt" or "lessthan" or "<" => Comparisons.Order(value, Argument(args, name)) < 0,
        "le" or "<=" => Comparisons.Order(value, Argument(args, name)) <= 0,
        "gt" or "greaterthan" or ">" => Comparisons.Order(value, Argument(args, name)) > 0,
        "ge" or ">=" => Comparisons.Order(value, Argument(args, name)) >= 0,
        "in" => Comparisons.Contains(Argument(args, name), value),
        "sameas" => SameAs(value, Argument(args, name)),
        _ => throw new JinjaRuntimeError($"no test named '{name}'"),
    };

    static JinjaValue Argument(CallArgs args, string test) =>
        args.Get(0, "other") ?? throw new JinjaRuntimeError($"test '{test}' needs an argument");

    static long Integer(JinjaValue value, string test) =>
        Operators.AsInteger(value) ?? throw new JinjaRuntimeError($"test '{test}' needs an integer, got {value.TypeName}");

    /// Python "is": singletons (None, True, False) and the same object.
    static bool SameAs(JinjaValue a, JinjaValue b) =>
        ReferenceEquals(a, b) || (a is NoneValue && b is NoneValue);
}
