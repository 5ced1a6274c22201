using System.Text;
using static Serving.Engine.Templates.Jinja.Sequences;

namespace Serving.Engine.Templates.Jinja;

/// Executes a parsed template against a root scope and returns the rendered text. This file runs
/// statements; Evaluator.Expressions.cs computes expressions. Every loop iteration, macro call and
/// produced character is counted against RenderLimits.
internal sealed partial class Evaluator
{
    enum Flow { Normal, Break, Continue }

    readonly RenderLimits _limits;
    long _iterations;
    long _workChars;
    int _callDepth;
    int _line; // line of the node being evaluated, for runtime error messages

    Evaluator(RenderLimits limits) => _limits = limits;

    public static string Render(IReadOnlyList<Node> template, Scope root, RenderLimits limits)
    {
        var evaluator = new Evaluator(limits);
        var output = new StringBuilder();
        try
        {
            evaluator.Execute(template, root, output);
        }
        catch (JinjaRuntimeError e)
        {
            throw TemplateException.Runtime(e.Message, evaluator._line);
        }
        catch (OverflowException)
        {
            throw TemplateException.Runtime("integer overflow", evaluator._line);
        }
        return output.ToString();
    }

    Flow Execute(IReadOnlyList<Node> nodes, Scope scope, StringBuilder output)
    {
        foreach (var node in nodes)
        {
            _line = node.Line;
            var flow = node switch
            {
                TextNode text => Write(output, text.Text),
                OutputNode o => Write(output, PyFormat.Str(Eval(o.Value, scope))),
                IfNode i => ExecuteIf(i, scope, output),
                ForNode f => ExecuteFor(f, scope, output),
                SetNode s => ExecuteSet(s, scope),
                SetBlockNode b => ExecuteSetBlock(b, scope),
                FilterBlockNode f => ExecuteFilterBlock(f, scope, output),
                MacroNode m => DefineMacro(m, scope),
                CallBlockNode c => ExecuteCallBlock(c, scope, output),
                BreakNode => Flow.Break,
                ContinueNode => Flow.Continue,
                _ => throw new JinjaRuntimeError($"cannot execute {node.GetType().Name}"),
            };
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    Flow Write(StringBuilder output, string text)
    {
        if (output.Length + text.Length > _limits.MaxOutputChars)
            throw TemplateException.Runtime($"rendered output exceeds {_limits.MaxOutputChars} characters", _line);
        CountWork(text.Length);
        output.Append(text);
        return Flow.Normal;
    }

    void CountWork(long chars)
    {
        _workChars += chars;
        if (_workChars > _limits.MaxWorkChars)
            throw TemplateException.Runtime($"template built more than {_limits.MaxWorkChars} characters", _line);
    }

    Flow ExecuteIf(IfNode node, Scope scope, StringBuilder output)
    {
        foreach (var branch in node.Branches)
            if (Eval(branch.Condition, scope).IsTruthy) return Execute(branch.Body, scope, output);
        return Execute(node.Else, scope, output);
    }

    Flow ExecuteFor(ForNode node, Scope scope, StringBuilder output)
    {
        IReadOnlyList<JinjaValue> items = Iterate(Eval(node.Iterable, scope));
        if (node.Filter is not null) items = items.Where(item => PassesLoopFilter(node, item, scope)).ToList();
        if (items.Count == 0) return Execute(node.Else, scope, output);
        for (var i = 0; i < items.Count; i++)
        {
            if (++_iterations > _limits.MaxLoopIterations)
                throw TemplateException.Runtime($"template ran more than {_limits.MaxLoopIterations} loop iterations", node.Line);
            var iterationScope = new Scope(scope);
            BindTargets(iterationScope, node.Targets, items[i]);
            iterationScope.Set("loop", new LoopValue(items, i));
            var flow = Execute(node.Body, iterationScope, output);
            _line = node.Line;
            if (flow == Flow.Break) break;
        }
        return Flow.Normal;
    }

    bool PassesLoopFilter(ForNode node, JinjaValue item, Scope scope)
    {
        var filterScope = new Scope(scope);
        BindTargets(filterScope, node.Targets, item);
        return Eval(node.Filter!, filterScope).IsTruthy;
    }

    static void BindTargets(Scope scope, IReadOnlyList<string> targets, JinjaValue value)
    {
        if (targets.Count == 1)
        {
            scope.Set(targets[0], value);
            return;
        }
        var parts = Iterate(value);
        if (parts.Count != targets.Count)
            throw new JinjaRuntimeError($"cannot unpack {parts.Count} values into {targets.Count} variables");
        for (var i = 0; i < targets.Count; i++) scope.Set(targets[i], parts[i]);
    }

    Flow ExecuteSet(SetNode node, Scope scope)
    {
        var value = Eval(node.Value, scope);
        if (node.Attribute is null)
        {
            BindTargets(scope, node.Targets, value);
            return Flow.Normal;
        }
        if (scope.Lookup(node.Targets[0]) is not NamespaceValue ns)
            throw new JinjaRuntimeError($"cannot assign attribute on non-namespace object '{node.Targets[0]}'");
        ns.Attributes.Set(node.Attribute, value);
        return Flow.Normal;
    }

    Flow ExecuteSetBlock(SetBlockNode node, Scope scope)
    {
        var captured = new StringBuilder();
        Execute(node.Body, scope, captured);
        scope.Set(node.Target, new StringValue(captured.ToString()));
        return Flow.Normal;
    }

    Flow ExecuteFilterBlock(FilterBlockNode node, Scope scope, StringBuilder output)
    {
        var captured = new StringBuilder();
        Execute(node.Body, scope, captured);
        JinjaValue value = new StringValue(captured.ToString());
        foreach (var (name, args) in node.Filters) value = Filters.Apply(name, value, EvalArgs(args, scope));
        return Write(output, PyFormat.Str(value));
    }

    /// A macro closes over the scope it is defined in; each call renders its body in a fresh child scope.
    Flow DefineMacro(MacroNode node, Scope scope)
    {
        scope.Set(node.Name, new CallableValue(node.Name, args => CallMacro(node, scope, args)));
        return Flow.Normal;
    }

    /// The called macro gets `caller`, a macro whose body is the call block, closing over the current scope.
    Flow ExecuteCallBlock(CallBlockNode node, Scope scope, StringBuilder output)
    {
        var callee = Eval(node.Call.Callee, scope);
        var args = EvalArgs(node.Call.Args, scope);
        var caller = new CallableValue("caller", callerArgs => CallMacro(node.Caller, scope, callerArgs));
        args = args with { Named = [.. args.Named, new("caller", caller)] };
        if (callee is not CallableValue macro) throw new JinjaRuntimeError($"'{callee.TypeName}' object is not callable");
        return Write(output, PyFormat.Str(macro.Invoke(args)));
    }

    JinjaValue CallMacro(MacroNode node, Scope definingScope, CallArgs args)
    {
        if (args.Positional.Count > node.Parameters.Count)
            throw new JinjaRuntimeError($"macro '{node.Name}' takes not more than {node.Parameters.Count} argument(s)");
        if (++_callDepth > _limits.MaxCallDepth)
            throw TemplateException.Runtime($"macro calls nested deeper than {_limits.MaxCallDepth}", node.Line);
        var callerLine = _line;
        try
        {
            var callScope = new Scope(definingScope);
            if (args.Get(-1, "caller") is { } caller) callScope.Set("caller", caller);
            for (var i = 0; i < node.Parameters.Count; i++)
            {
                var parameter = node.Parameters[i];
                var value = args.Get(i, parameter.Name)
                    ?? (parameter.Default is null ? new UndefinedValue(parameter.Name) : Eval(parameter.Default, callScope));
                callScope.Set(parameter.Name, value);
            }
            var output = new StringBuilder();
            Execute(node.Body, callScope, output);
            _line = callerLine; // on failure the line stays inside the macro, where the error is
            return new StringValue(output.ToString());
        }
        finally
        {
            _callDepth--;
        }
    }
}
