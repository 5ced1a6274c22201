using System.Text;

namespace Serving.Engine.Templates.Jinja;

/// The Python str methods chat templates call: message.content.strip(), text.split('</think>'), ...
internal static class StringMethods
{
    static readonly HashSet<string> Names =
    [
        "strip", "lstrip", "rstrip", "split", "splitlines", "startswith", "endswith", "upper", "lower", "title",
        "capitalize", "replace", "format", "join", "find", "count", "isdigit", "isspace", "isalpha",
    ];

    public static bool Has(string name) => Names.Contains(name);

    public static JinjaValue Call(string s, string name, CallArgs args) => name switch
    {
        "strip" => Str(PyStr.Strip(s, OptionalString(args, 0, "chars"))),
        "lstrip" => Str(PyStr.Strip(s, OptionalString(args, 0, "chars"), right: false)),
        "rstrip" => Str(PyStr.Strip(s, OptionalString(args, 0, "chars"), left: false)),
        "split" => Strings(PyStr.Split(s, OptionalString(args, 0, "sep"), OptionalInt(args, 1, "maxsplit") ?? -1)),
        "splitlines" => Strings(PyStr.SplitLines(s)),
        "startswith" => BoolValue.Of(Prefixes(args).Any(p => s.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => BoolValue.Of(Prefixes(args).Any(p => s.EndsWith(p, StringComparison.Ordinal))),
        "upper" => Str(s.ToUpperInvariant()),
        "lower" => Str(s.ToLowerInvariant()),
        "title" => Str(PyStr.Title(s)),
        "capitalize" => Str(PyStr.Capitalize(s)),
        "replace" => Str(PyStr.Replace(
            s, RequiredString(args, 0, "old"), RequiredString(args, 1, "new"), OptionalInt(args, 2, "count") ?? -1)),
        "format" => Str(Format(s, args)),
        "join" => Str(string.Join(s, Sequences.Iterate(args.Get(0, "iterable") ?? ListValue.Empty).Select(RequireString))),
        "find" => new IntValue(s.IndexOf(RequiredString(args, 0, "sub"), StringComparison.Ordinal)),
        "count" => new IntValue(PyStr.CountOf(s, RequiredString(args, 0, "sub"))),
        "isdigit" => BoolValue.Of(s.Length > 0 && s.All(char.IsDigit)),
        "isspace" => BoolValue.Of(s.Length > 0 && s.All(PyStr.IsSpace)),
        _ => BoolValue.Of(s.Length > 0 && s.All(char.IsLetter)),
    };

    static StringValue Str(string s) => new(s);

    static ListValue Strings(IEnumerable<string> parts) => new(parts.Select(p => (JinjaValue)new StringValue(p)).ToList());

    static IEnumerable<string> Prefixes(CallArgs args) => args.Get(0, "prefix") switch
    {
        StringValue p => [p.Value],
        ListValue l => l.Items.Select(RequireString),
        var other => throw new JinjaRuntimeError(
            $"startswith/endswith argument must be str or a tuple of str, not {other?.TypeName ?? "nothing"}"),
    };

    static string RequireString(JinjaValue value) =>
        value is StringValue s ? s.Value : throw new JinjaRuntimeError($"expected str, got {value.TypeName}");

    static string RequiredString(CallArgs args, int index, string name) =>
        RequireString(args.Get(index, name) ?? throw new JinjaRuntimeError($"missing argument '{name}'"));

    static string? OptionalString(CallArgs args, int index, string name) => args.Get(index, name) switch
    {
        null or NoneValue => null,
        var value => RequireString(value),
    };

    static long? OptionalInt(CallArgs args, int index, string name) => args.Get(index, name) switch
    {
        null or NoneValue => null,
        var value => Operators.AsInteger(value) ?? throw new JinjaRuntimeError($"'{name}' must be an integer"),
    };

    /// str.format with "{}", "{0}" and "{name}" fields and "{{" / "}}" escapes; format specs are not supported.
    static string Format(string template, CallArgs args)
    {
        var sb = new StringBuilder();
        var auto = 0;
        for (var i = 0; i < template.Length; i++)
        {
            var c = template[i];
            if ((c == '{' || c == '}') && i + 1 < template.Length && template[i + 1] == c)
            {
                sb.Append(c);
                i++;
                continue;
            }
            if (c != '{') { sb.Append(c); continue; }
            var close = template.IndexOf('}', i);
            if (close < 0) throw new JinjaRuntimeError("single '{' encountered in format string");
            var field = template[(i + 1)..close];
            if (field.Contains(':') || field.Contains('!')) throw new JinjaRuntimeError("format specs are not supported");
            var value = field.Length == 0 ? args.Get(auto++, "")
                : int.TryParse(field, out var position) ? args.Get(position, "")
                : args.Get(-1, field);
            sb.Append(PyFormat.Str(value ?? throw new JinjaRuntimeError($"no format argument for '{{{field}}}'")));
            i = close;
        }
        return sb.ToString();
    }
}
