namespace Serving.Engine.Templates.Jinja;

internal sealed partial class Evaluator
{
    JinjaValue Eval(Expr expr, Scope scope)
    {
        var value = expr switch
        {
            LiteralExpr l => l.Value,
            NameExpr n => scope.Lookup(n.Name),
            ListExpr l => new ListValue(l.Items.Select(item => Eval(item, scope)).ToList(), l.IsTuple),
            DictExpr d => EvalDict(d, scope),
            AttributeExpr a => Members.GetAttribute(Eval(a.Target, scope), a.Name),
            ItemExpr i => Members.GetItem(Eval(i.Target, scope), Eval(i.Index, scope)),
            SliceExpr slice => EvalSlice(slice, scope),
            CallExpr c => EvalCall(c, scope),
            FilterExpr f => Filters.Apply(f.Name, Eval(f.Value, scope), EvalArgs(f.Args, scope)),
            TestExpr t => BoolValue.Of(Predicates.Test(t.Name, Eval(t.Value, scope), EvalArgs(t.Args, scope)) != t.Negated),
            UnaryExpr u => EvalUnary(u, scope),
            BinaryExpr b => EvalBinary(b, scope),
            CompareExpr c => EvalCompare(c, scope),
            ConditionalExpr c => EvalConditional(c, scope),
            _ => throw new JinjaRuntimeError($"cannot evaluate {expr.GetType().Name}"),
        };
        // Strings built by operations count against the work budget; looked-up values were counted when built.
        if (value is StringValue s && expr is BinaryExpr or FilterExpr or CallExpr or SliceExpr) CountWork(s.Value.Length);
        return value;
    }

    DictValue EvalDict(DictExpr expr, Scope scope)
    {
        var dict = new DictValue();
        foreach (var (keyExpr, valueExpr) in expr.Pairs) dict.Set(Eval(keyExpr, scope), Eval(valueExpr, scope));
        return dict;
    }

    JinjaValue EvalSlice(SliceExpr expr, Scope scope)
    {
        var target = Eval(expr.Target, scope);
        long? Bound(Expr? e)
        {
            if (e is null) return null;
            var value = Eval(e, scope);
            if (value is NoneValue) return null;
            return Operators.AsInteger(value) ?? throw new JinjaRuntimeError("slice indices must be integers or None");
        }
        return Sequences.Slice(target, Bound(expr.Start), Bound(expr.Stop), Bound(expr.Step));
    }

    JinjaValue EvalCall(CallExpr expr, Scope scope)
    {
        var callee = Eval(expr.Callee, scope);
        var args = EvalArgs(expr.Args, scope);
        return callee switch
        {
            CallableValue f => f.Invoke(args),
            UndefinedValue u => throw new JinjaRuntimeError($"'{u.Name}' is undefined"),
            _ => throw new JinjaRuntimeError($"'{callee.TypeName}' object is not callable"),
        };
    }

    CallArgs EvalArgs(Arguments args, Scope scope)
    {
        if (args.Positional.Count == 0 && args.Named.Count == 0) return NoArgs;
        var positional = args.Positional.Select(a => Eval(a, scope)).ToList();
        var named = args.Named.Select(a => new KeyValuePair<string, JinjaValue>(a.Name, Eval(a.Value, scope))).ToList();
        return new CallArgs(positional, named);
    }

    static readonly CallArgs NoArgs = new([], []);

    JinjaValue EvalUnary(UnaryExpr expr, Scope scope)
    {
        var operand = Eval(expr.Operand, scope);
        return expr.Operator switch
        {
            "not" => BoolValue.Of(!operand.IsTruthy),
            "-" => Operators.Negate(operand),
            _ => Operators.AsNumber(operand) is not null
                ? operand
                : throw new JinjaRuntimeError($"bad operand type for unary +: '{operand.TypeName}'"),
        };
    }

    /// "and"/"or" short-circuit and return an operand (Python semantics), the rest go to Operators.
    JinjaValue EvalBinary(BinaryExpr expr, Scope scope)
    {
        var left = Eval(expr.Left, scope);
        return expr.Operator switch
        {
            "and" => left.IsTruthy ? Eval(expr.Right, scope) : left,
            "or" => left.IsTruthy ? left : Eval(expr.Right, scope),
            _ => Operators.Binary(expr.Operator, left, Eval(expr.Right, scope)),
        };
    }

    /// a < b < c is (a < b) and (b < c), each operand evaluated once.
    JinjaValue EvalCompare(CompareExpr expr, Scope scope)
    {
        var left = Eval(expr.First, scope);
        foreach (var (op, operandExpr) in expr.Rest)
        {
            var right = Eval(operandExpr, scope);
            if (!Comparisons.Compare(op, left, right)) return BoolValue.False;
            left = right;
        }
        return BoolValue.True;
    }

    JinjaValue EvalConditional(ConditionalExpr expr, Scope scope)
    {
        if (Eval(expr.Condition, scope).IsTruthy) return Eval(expr.Then, scope);
        return expr.Otherwise is null ? new UndefinedValue("conditional expression") : Eval(expr.Otherwise, scope);
    }
}
