using System.Globalization;
using System.Text;

namespace Serving.Engine.Templates.Jinja;

/// jinja2's built-in filters that chat templates use, plus transformers' tojson (json.dumps with
/// ensure_ascii=False). String filters first convert with str(), as jinja2's soft_str does.
internal static partial class Filters
{
    static readonly HashSet<string> Names =
    [
        "trim", "upper", "lower", "title", "capitalize", "replace", "string", "safe", "escape", "e", "length", "count",
        "default", "d", "first", "last", "list", "reverse", "items", "int", "float", "abs", "round", "tojson", "indent",
        "join", "map", "select", "reject", "selectattr", "rejectattr", "sort", "dictsort", "unique", "min", "max", "sum",
    ];

    static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// Checked when parsing, as jinja2 rejects an unknown filter when it compiles the template.
    public static bool Exists(string name) => Names.Contains(name);

    public static JinjaValue Apply(string name, JinjaValue value, CallArgs args) => name switch
    {
        "trim" => Str(PyStr.Strip(S(value), OptionalString(args, 0, "chars"))),
        "upper" => Str(S(value).ToUpperInvariant()),
        "lower" => Str(S(value).ToLowerInvariant()),
        "title" => Str(JinjaTitle(S(value))),
        "capitalize" => Str(PyStr.Capitalize(S(value))),
        "replace" => Str(PyStr.Replace(
            S(value), S(Required(args, 0, "old")), S(Required(args, 1, "new")), OptionalInt(args, 2, "count") ?? -1)),
        "string" => Str(S(value)),
        "safe" => value is StringValue { IsSafe: true } ? value : Markup(S(value)),
        "escape" or "e" => value is StringValue { IsSafe: true } ? value : Markup(HtmlEscape(S(value))),
        "length" or "count" => new IntValue(Sequences.Length(value)),
        "default" or "d" => value is UndefinedValue || ((args.Get(1, "boolean")?.IsTruthy ?? false) && !value.IsTruthy)
            ? args.Get(0, "default_value") ?? StringValue.Empty : value,
        "first" => Sequences.Iterate(value) is { Count: > 0 } items ? items[0] : new UndefinedValue("first"),
        "last" => Sequences.Iterate(value) is { Count: > 0 } all ? all[^1] : new UndefinedValue("last"),
        "list" => new ListValue(Sequences.Iterate(value)),
        "reverse" => value is StringValue s ? Str(string.Concat(Sequences.CodePoints(s.Value).AsEnumerable().Reverse()))
            : new ListValue(Sequences.Iterate(value).Reverse().ToList()),
        "items" => value switch
        {
            DictValue d => Members.Items(d),
            UndefinedValue => ListValue.Empty,
            _ => throw new JinjaRuntimeError($"items filter needs a mapping, got {value.TypeName}"),
        },
        "int" => ToInt(value, args),
        "float" => ToFloat(value, args),
        "abs" => Abs(value),
        "round" => Round(value, args),
        "tojson" => Str(ToJson(value, args)),
        "indent" => Str(Indent(S(value), args)),
        _ => ApplyCollectionFilter(name, value, args),
    };

    // markupsafe's Markup (StringValue.IsSafe)
    static StringValue Markup(string s) => new(Str(s).Value) { IsSafe = true };

    static StringValue Str(string s)
    {
        RenderLimits.CheckLength(s.Length);
        return new StringValue(s);
    }

    static string S(JinjaValue value) => PyFormat.Str(value);

    static JinjaValue Required(CallArgs args, int index, string name) =>
        args.Get(index, name) ?? throw new JinjaRuntimeError($"missing filter argument '{name}'");

    static string? OptionalString(CallArgs args, int index, string name) => args.Get(index, name) switch
    {
        null or NoneValue => null,
        var v => S(v),
    };

    static long? OptionalInt(CallArgs args, int index, string name) => args.Get(index, name) switch
    {
        null or NoneValue => null,
        var v => Operators.AsInteger(v) ?? throw new JinjaRuntimeError($"filter argument '{name}' must be an integer"),
    };

    /// jinja2's title filter: capitalize each word after a run of "-", whitespace, "(", "{", "[" or "<".
    static string JinjaTitle(string s)
    {
        var chars = s.ToCharArray();
        var atWordStart = true;
        for (var i = 0; i < chars.Length; i++)
        {
            var separator = chars[i] is '-' or '(' or '{' or '[' or '<' || PyStr.IsSpace(chars[i]);
            chars[i] = separator ? chars[i] : atWordStart ? char.ToUpperInvariant(chars[i]) : char.ToLowerInvariant(chars[i]);
            atWordStart = separator;
        }
        return new string(chars);
    }

    static JinjaValue ToInt(JinjaValue value, CallArgs args)
    {
        var fallback = args.Get(0, "default") ?? new IntValue(0);
        return value switch
        {
            IntValue => value,
            BoolValue b => new IntValue(b.Value ? 1 : 0),
            FloatValue f when double.IsFinite(f.Value) => new IntValue((long)Math.Truncate(f.Value)),
            StringValue s when long.TryParse(s.Value.Trim(), NumberStyles.AllowLeadingSign, Invariant, out var i) => new IntValue(i),
            StringValue s when double.TryParse(s.Value.Trim(), NumberStyles.Float, Invariant, out var d)
                && double.IsFinite(d) && Math.Abs(d) < 9e18 => new IntValue((long)Math.Truncate(d)),
            _ => fallback,
        };
    }

    static JinjaValue ToFloat(JinjaValue value, CallArgs args)
    {
        var fallback = args.Get(0, "default") ?? new FloatValue(0);
        if (Operators.AsNumber(value) is double x) return new FloatValue(x);
        return value is StringValue s && double.TryParse(s.Value.Trim(), NumberStyles.Float, Invariant, out var d)
            ? new FloatValue(d) : fallback;
    }

    static JinjaValue Abs(JinjaValue value) => value switch
    {
        FloatValue f => new FloatValue(Math.Abs(f.Value)),
        _ when Operators.AsInteger(value) is long i => new IntValue(Math.Abs(i)),
        _ => throw new JinjaRuntimeError($"bad operand type for abs(): '{value.TypeName}'"),
    };

    static JinjaValue Round(JinjaValue value, CallArgs args)
    {
        var x = Operators.AsNumber(value) ?? throw new JinjaRuntimeError($"round needs a number, got {value.TypeName}");
        var precision = (int)(OptionalInt(args, 0, "precision") ?? 0);
        var method = OptionalString(args, 1, "method") ?? "common";
        var scale = Math.Pow(10, precision);
        var rounded = method switch
        {
            "common" => Math.Round(x, Math.Clamp(precision, 0, 15), MidpointRounding.ToEven), // Python round()
            "ceil" => Math.Ceiling(x * scale) / scale,
            "floor" => Math.Floor(x * scale) / scale,
            _ => throw new JinjaRuntimeError("round method must be 'common', 'ceil' or 'floor'"),
        };
        return new FloatValue(rounded);
    }

    /// transformers: json.dumps(x, ensure_ascii=ensure_ascii (False unless given), indent=indent, separators=separators,
    /// sort_keys=sort_keys).
    static string ToJson(JinjaValue value, CallArgs args)
    {
        var indent = args.Get(0, "indent") switch
        {
            null or NoneValue => null,
            StringValue s => s.Value,
            var n => new string(' ', (int)Math.Clamp(
                Operators.AsInteger(n) ?? throw new JinjaRuntimeError("indent must be an integer or a string"), 0, 64)),
        };
        string? itemSeparator = null, keySeparator = null;
        if (args.Get(-1, "separators") is ListValue { Items: [StringValue item, StringValue key] })
            (itemSeparator, keySeparator) = (item.Value, key.Value);
        return JsonFormat.Dumps(value, indent, itemSeparator, keySeparator, args.Get(-1, "sort_keys")?.IsTruthy ?? false,
            ensureAscii: args.Get(-1, "ensure_ascii")?.IsTruthy ?? false);
    }

    /// indent(width=4, first=False, blank=False): indents lines after the first; empty lines only when blank.
    static string Indent(string s, CallArgs args)
    {
        var width = args.Get(0, "width") switch
        {
            null => "    ",
            StringValue w => w.Value,
            var n => new string(' ', (int)Math.Clamp(Operators.AsInteger(n) ?? 4, 0, 256)),
        };
        var lines = PyStr.SplitLines(s + "\n");
        var indented = args.Get(2, "blank")?.IsTruthy == true
            ? string.Join("\n" + width, lines)
            : lines[0] + string.Concat(lines.Skip(1).Select(line => "\n" + (line.Length > 0 ? width + line : line)));
        return args.Get(1, "first")?.IsTruthy == true ? width + indented : indented;
    }

    /// markupsafe.escape: & < > " ' as HTML entities.
    public static string HtmlEscape(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s)
            sb.Append(c switch { '&' => "&amp;", '<' => "&lt;", '>' => "&gt;", '"' => "&#34;", '\'' => "&#39;", _ => c.ToString() });
        return sb.ToString();
    }
}
