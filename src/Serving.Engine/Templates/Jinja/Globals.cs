using System.Globalization;
using System.Text;

namespace Serving.Engine.Templates.Jinja;

/// The functions every template sees: jinja2's range, namespace and dict, and transformers'
/// raise_exception and strftime_now.
internal static class Globals
{
    public static Scope CreateScope(RenderLimits limits, Func<DateTime> clock)
    {
        var scope = new Scope(null);
        scope.Set("range", new CallableValue("range", args => Range(args, limits)));
        scope.Set("namespace", new CallableValue("namespace", Namespace));
        scope.Set("dict", new CallableValue("dict", args => Namespace(args).Attributes));
        scope.Set("raise_exception", new CallableValue("raise_exception", RaiseException));
        scope.Set("strftime_now", new CallableValue("strftime_now", args => StrftimeNow(args, clock())));
        return scope;
    }

    static ListValue Range(CallArgs args, RenderLimits limits)
    {
        var numbers = args.Positional.Select(a => Operators.AsInteger(a)
            ?? throw new JinjaRuntimeError($"range() needs integers, got {a.TypeName}")).ToList();
        var (start, stop, step) = numbers.Count switch
        {
            1 => (0L, numbers[0], 1L),
            2 => (numbers[0], numbers[1], 1L),
            3 => (numbers[0], numbers[1], numbers[2]),
            _ => throw new JinjaRuntimeError("range expected 1 to 3 integer arguments"),
        };
        if (step == 0) throw new JinjaRuntimeError("range() arg 3 must not be zero");
        var count = step > 0 ? (stop - start + step - 1) / step : (start - stop - step - 1) / -step;
        count = Math.Max(count, 0);
        if (count > limits.MaxLoopIterations)
            throw new JinjaRuntimeError($"range of {count} items exceeds the sandbox limit of {limits.MaxLoopIterations}");
        var items = new List<JinjaValue>((int)count);
        for (var i = 0L; i < count; i++) items.Add(new IntValue(start + i * step));
        return new ListValue(items);
    }

    /// namespace(a=1) or namespace({"a": 1}): a mutable attribute bag for state that must leave a loop.
    static NamespaceValue Namespace(CallArgs args)
    {
        var attributes = new DictValue();
        foreach (var positional in args.Positional)
        {
            if (positional is not DictValue initial) throw new JinjaRuntimeError("namespace() takes a mapping or keyword arguments");
            foreach (var (key, value) in initial.Entries) attributes.Set(key, value);
        }
        foreach (var (key, value) in args.Named) attributes.Set(key, value);
        return new NamespaceValue(attributes);
    }

    static JinjaValue RaiseException(CallArgs args) =>
        throw TemplateException.Raised(PyFormat.Str(args.Get(0, "message") ?? StringValue.Empty));

    /// Python's datetime.now().strftime(format) for the directives chat templates use.
    static StringValue StrftimeNow(CallArgs args, DateTime now)
    {
        var format = PyFormat.Str(args.Get(0, "format") ?? throw new JinjaRuntimeError("strftime_now needs a format"));
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length) { sb.Append(format[i]); continue; }
            var directive = format[++i];
            sb.Append(directive switch
            {
                'd' => now.ToString("dd", c),
                'm' => now.ToString("MM", c),
                'y' => now.ToString("yy", c),
                'Y' => now.ToString("yyyy", c),
                'H' => now.ToString("HH", c),
                'I' => now.ToString("hh", c),
                'M' => now.ToString("mm", c),
                'S' => now.ToString("ss", c),
                'p' => now.ToString("tt", c),
                'b' => now.ToString("MMM", c),
                'B' => now.ToString("MMMM", c),
                'a' => now.ToString("ddd", c),
                'A' => now.ToString("dddd", c),
                'j' => now.DayOfYear.ToString("000", c),
                'f' => now.ToString("ffffff", c),
                '%' => "%",
                _ => "%" + directive,
            });
        }
        return new StringValue(sb.ToString());
    }
}
