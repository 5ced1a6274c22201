using System.Collections;
using System.Globalization;
using System.Text;

namespace Serving.Deploy.Tests.Support.Helm;

/// Runs parsed templates over chart data: maps are IDictionary&lt;string, object?&gt;, lists IList, scalars
/// string, long, double, bool or null. A missing map key is an error (stricter than Helm), so a typo in a
/// template or values file fails the tests instead of rendering an empty string.
internal sealed class TemplateEvaluator(IReadOnlyDictionary<string, IReadOnlyList<TemplateNode>> definitions)
{
    public string Render(IReadOnlyList<TemplateNode> nodes, object? dot)
    {
        var output = new StringBuilder();
        var variables = new Dictionary<string, object?> { ["$"] = dot };
        Write(nodes, dot, variables, output);
        return output.ToString();
    }

    void Write(IReadOnlyList<TemplateNode> nodes, object? dot, Dictionary<string, object?> variables, StringBuilder output)
    {
        foreach (var node in nodes)
        {
            switch (node)
            {
                case TextNode text:
                    output.Append(text.Text);
                    break;
                case ActionNode action:
                    output.Append(Print(Evaluate(action.Pipeline, dot, variables)));
                    break;
                case IfNode ifNode:
                    Write(IsTrue(Evaluate(ifNode.Condition, dot, variables)) ? ifNode.Then : ifNode.Else,
                        dot, variables, output);
                    break;
                case WithNode with:
                    var value = Evaluate(with.Value, dot, variables);
                    if (IsTrue(value)) Write(with.Body, value, variables, output);
                    else Write(with.Else, dot, variables, output);
                    break;
                case RangeNode range:
                    WriteRange(range, dot, variables, output);
                    break;
                default:
                    throw new InvalidOperationException($"unknown node {node.GetType().Name}");
            }
        }
    }

    void WriteRange(RangeNode range, object? dot, Dictionary<string, object?> variables, StringBuilder output)
    {
        var source = Evaluate(range.Source, dot, variables);
        IEnumerable<(object? Key, object? Value)> elements = source switch
        {
            null => [],
            IDictionary<string, object?> map => map.OrderBy(p => p.Key, StringComparer.Ordinal)
                .Select(p => ((object?)p.Key, p.Value)),
            IList list => list.Cast<object?>().Select((v, i) => ((object?)(long)i, v)),
            _ => throw new InvalidOperationException($"range over {source.GetType().Name}"),
        };
        foreach (var (key, value) in elements)
        {
            var scope = new Dictionary<string, object?>(variables);
            if (range.KeyVariable != null) scope[range.KeyVariable] = key;
            if (range.ValueVariable != null) scope[range.ValueVariable] = value;
            Write(range.Body, value, scope, output);
        }
    }

    object? Evaluate(Pipeline pipeline, object? dot, Dictionary<string, object?> variables)
    {
        object? piped = null;
        for (var i = 0; i < pipeline.Commands.Count; i++)
        {
            var operands = pipeline.Commands[i].Operands;
            if (operands[0] is FunctionOperand function)
            {
                var args = operands.Skip(1).Select(o => EvaluateOperand(o, dot, variables)).ToList();
                if (i > 0) args.Add(piped);
                piped = Call(function.Name, args);
            }
            else if (operands.Count == 1 && i == 0)
                piped = EvaluateOperand(operands[0], dot, variables);
            else
                throw new FormatException("only a function can take arguments or a piped value");
        }
        return piped;
    }

    object? EvaluateOperand(Operand operand, object? dot, Dictionary<string, object?> variables) => operand switch
    {
        FieldOperand field => Walk(dot, field.Path),
        VariableOperand variable => variables.TryGetValue(variable.Name, out var value)
            ? Walk(value, variable.Path)
            : throw new KeyNotFoundException($"undefined variable {variable.Name}"),
        LiteralOperand literal => literal.Value,
        SubPipelineOperand sub => Evaluate(sub.Pipeline, dot, variables),
        FunctionOperand function => Call(function.Name, []),
        _ => throw new InvalidOperationException(operand.GetType().Name),
    };

    static object? Walk(object? value, IReadOnlyList<string> path)
    {
        foreach (var name in path)
            value = value is IDictionary<string, object?> map
                ? map.TryGetValue(name, out var next) ? next : throw new KeyNotFoundException($"no key '{name}'")
                : throw new KeyNotFoundException($"'{name}' of a {value?.GetType().Name ?? "nil"}");
        return value;
    }

    object? Call(string name, List<object?> args) => name == "include"
        ? Render(definitions.TryGetValue((string)args[0]!, out var body) ? body
            : throw new KeyNotFoundException($"no template '{args[0]}'"), args[1])
        : TemplateFunctions.Call(name, args);

    /// Go's truth: false, 0, nil and empty strings, maps and lists are false.
    public static bool IsTrue(object? value) => value switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        ICollection c => c.Count > 0,
        _ => true,
    };

    /// fmt's %v for the scalar kinds charts print.
    public static string Print(object? value) => value switch
    {
        null => "",
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        string s => s,
        _ => throw new InvalidOperationException($"cannot print a {value.GetType().Name}; use toYaml"),
    };
}
