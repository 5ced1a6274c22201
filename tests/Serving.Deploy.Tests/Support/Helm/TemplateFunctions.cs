using System.Globalization;
using System.Text.RegularExpressions;

namespace Serving.Deploy.Tests.Support.Helm;

/// The Helm (sprig) functions the chart uses, with Helm's argument order: the piped value comes last.
internal static class TemplateFunctions
{
    public static object? Call(string name, List<object?> args) => name switch
    {
        "quote" => string.Join(' ', args.Select(a => TemplateLexer.Quote(TemplateEvaluator.Print(a)))),
        "toYaml" => ChartData.ToYaml(Single(args, name)).TrimEnd('\n'),
        "nindent" => "\n" + Indent(ToLong(args[0]), (string)args[1]!),
        "indent" => Indent(ToLong(args[0]), (string)args[1]!),
        "default" => TemplateEvaluator.IsTrue(args.Count > 1 ? args[1] : null) ? args[1] : args[0],
        "add" => args.Sum(ToLong),
        "trunc" => Truncate((string)args[1]!, ToLong(args[0])),
        "trimSuffix" => ((string)args[1]!).EndsWith((string)args[0]!, StringComparison.Ordinal)
            ? ((string)args[1]!)[..^((string)args[0]!).Length] : args[1],
        "printf" => Printf((string)args[0]!, args.Skip(1).ToList()),
        "not" => !TemplateEvaluator.IsTrue(Single(args, name)),
        "and" => args.All(TemplateEvaluator.IsTrue),
        "or" => args.Any(TemplateEvaluator.IsTrue),
        "eq" => args.Skip(1).Any(a => Equals(Normalize(args[0]), Normalize(a))),
        _ => throw new NotSupportedException($"template function '{name}' is outside the supported subset"),
    };

    static object? Single(List<object?> args, string name) =>
        args.Count == 1 ? args[0] : throw new FormatException($"{name} takes one argument, got {args.Count}");

    static long ToLong(object? value) => value switch
    {
        long l => l,
        double d when d == Math.Floor(d) => (long)d,
        string s => long.Parse(s, CultureInfo.InvariantCulture),
        _ => throw new FormatException($"not an integer: {value}"),
    };

    static object? Normalize(object? value) => value is long l ? (double)l : value;

    static string Truncate(string value, long length) => value.Length <= length ? value : value[..(int)length];

    static string Indent(long spaces, string text)
    {
        var pad = new string(' ', (int)spaces);
        return string.Join('\n', text.Split('\n').Select(line => pad + line));
    }

    /// %s, %d and %v, which is all the chart formats.
    static string Printf(string format, List<object?> args)
    {
        var next = 0;
        return Regex.Replace(format, "%[sdv]", _ => TemplateEvaluator.Print(args[next++]));
    }
}
