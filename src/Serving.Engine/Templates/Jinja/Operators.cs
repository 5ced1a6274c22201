namespace Serving.Engine.Templates.Jinja;

/// Arithmetic, comparison, equality and membership with Python semantics (bool counts as int,
/// int/float mix, "/" always gives float, "//" and "%" floor toward negative infinity).
internal static class Operators
{
    public static JinjaValue Binary(string op, JinjaValue left, JinjaValue right)
    {
        if (op == "~") return Concat(PyFormat.Str(left), PyFormat.Str(right));
        FailIfUndefined(left);
        FailIfUndefined(right);
        return op switch
        {
            "+" => Add(left, right),
            "*" => Multiply(left, right),
            "-" or "/" or "//" or "%" or "**" => Arithmetic(op, left, right),
            _ => throw new JinjaRuntimeError($"unknown operator '{op}'"),
        };
    }

    public static void FailIfUndefined(JinjaValue value)
    {
        if (value is UndefinedValue u) throw new JinjaRuntimeError($"'{u.Name}' is undefined");
    }

    static StringValue Concat(string a, string b)
    {
        RenderLimits.CheckLength((long)a.Length + b.Length);
        return new StringValue(a + b);
    }

    // Markup + str and str + Markup: the plain one escaped, the result Markup
    static StringValue SafeConcat(StringValue a, StringValue b)
    {
        var text = Concat(a.IsSafe ? a.Value : Filters.HtmlEscape(a.Value), b.IsSafe ? b.Value : Filters.HtmlEscape(b.Value));
        return new StringValue(text.Value) { IsSafe = true };
    }

    static JinjaValue Add(JinjaValue left, JinjaValue right) => (left, right) switch
    {
        (StringValue a, StringValue b) => a.IsSafe || b.IsSafe ? SafeConcat(a, b) : Concat(a.Value, b.Value),
        (ListValue a, ListValue b) => ConcatLists(a, b),
        _ => Arithmetic("+", left, right),
    };

    static ListValue ConcatLists(ListValue a, ListValue b)
    {
        RenderLimits.CheckLength((long)a.Items.Count + b.Items.Count);
        return new ListValue(a.Items.Concat(b.Items).ToList(), a.IsTuple && b.IsTuple);
    }

    static JinjaValue Multiply(JinjaValue left, JinjaValue right)
    {
        if (left is IntValue or BoolValue && right is StringValue or ListValue) (left, right) = (right, left);
        if (left is StringValue s && AsInteger(right) is long n)
        {
            RenderLimits.CheckLength(s.Value.Length * Math.Max(n, 0));
            return new StringValue(n <= 0 ? "" : string.Concat(Enumerable.Repeat(s.Value, (int)n)));
        }
        if (left is ListValue l && AsInteger(right) is long m)
        {
            RenderLimits.CheckLength(l.Items.Count * Math.Max(m, 0));
            var repeated = new List<JinjaValue>();
            for (var i = 0; i < m; i++) repeated.AddRange(l.Items);
            return new ListValue(repeated, l.IsTuple);
        }
        return Arithmetic("*", left, right);
    }

    static JinjaValue Arithmetic(string op, JinjaValue left, JinjaValue right)
    {
        if (AsInteger(left) is long a && AsInteger(right) is long b) return IntegerArithmetic(op, a, b);
        if (AsNumber(left) is double x && AsNumber(right) is double y) return new FloatValue(FloatArithmetic(op, x, y));
        throw new JinjaRuntimeError(
            $"unsupported operand type(s) for {op}: '{left.TypeName}' and '{right.TypeName}'");
    }

    static JinjaValue IntegerArithmetic(string op, long a, long b)
    {
        if (b == 0 && op is "/" or "//" or "%") throw new JinjaRuntimeError("division by zero");
        try
        {
            return op switch
            {
                "+" => new IntValue(checked(a + b)),
                "-" => new IntValue(checked(a - b)),
                "*" => new IntValue(checked(a * b)),
                "/" => new FloatValue((double)a / b),
                "//" => new IntValue(FloorDiv(a, b)),
                "%" => new IntValue(a - b * FloorDiv(a, b)),
                _ => b >= 0 ? new IntValue(Power(a, b)) : new FloatValue(Math.Pow(a, b)),
            };
        }
        catch (OverflowException)
        {
            throw new JinjaRuntimeError("integer result too large for the sandbox");
        }
    }

    static long FloorDiv(long a, long b)
    {
        var q = a / b;
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
    }

    /// Exponentiation by squaring; a base is squared only while exponent bits remain, so overflow means
    /// the true result overflows too.
    static long Power(long a, long b)
    {
        long result = 1;
        var factor = a;
        while (b > 0)
        {
            if ((b & 1) == 1) result = checked(result * factor);
            b >>= 1;
            if (b > 0) factor = checked(factor * factor);
        }
        return result;
    }

    static double FloatArithmetic(string op, double x, double y)
    {
        if (y == 0 && op is "/" or "//" or "%") throw new JinjaRuntimeError("float division by zero");
        return op switch
        {
            "+" => x + y,
            "-" => x - y,
            "*" => x * y,
            "/" => x / y,
            "//" => Math.Floor(x / y),
            "%" => x - y * Math.Floor(x / y),
            _ => Math.Pow(x, y),
        };
    }

    public static long? AsInteger(JinjaValue value) => value switch
    {
        IntValue i => i.Value,
        BoolValue b => b.Value ? 1 : 0,
        _ => null,
    };

    public static double? AsNumber(JinjaValue value) => value switch
    {
        FloatValue f => f.Value,
        _ => AsInteger(value),
    };

    public static JinjaValue Negate(JinjaValue value) => value switch
    {
        FloatValue f => new FloatValue(-f.Value),
        _ when AsInteger(value) is long i => new IntValue(checked(-i)),
        UndefinedValue u => throw new JinjaRuntimeError($"'{u.Name}' is undefined"),
        _ => throw new JinjaRuntimeError($"bad operand type for unary -: '{value.TypeName}'"),
    };
}
