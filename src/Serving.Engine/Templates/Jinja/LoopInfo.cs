namespace Serving.Engine.Templates.Jinja;

/// The "loop" variable of a for-loop iteration (jinja2's LoopContext, without recursion).
internal static class LoopInfo
{
    public static DictValue Create(IReadOnlyList<JinjaValue> items, int index)
    {
        var n = items.Count;
        var loop = new DictValue();
        loop.Set("index", new IntValue(index + 1));
        loop.Set("index0", new IntValue(index));
        loop.Set("revindex", new IntValue(n - index));
        loop.Set("revindex0", new IntValue(n - index - 1));
        loop.Set("first", BoolValue.Of(index == 0));
        loop.Set("last", BoolValue.Of(index == n - 1));
        loop.Set("length", new IntValue(n));
        loop.Set("depth", new IntValue(1));
        loop.Set("depth0", new IntValue(0));
        loop.Set("previtem", index > 0 ? items[index - 1] : new UndefinedValue("previtem"));
        loop.Set("nextitem", index < n - 1 ? items[index + 1] : new UndefinedValue("nextitem"));
        loop.Set("cycle", new CallableValue("cycle", args => Cycle(args, index)));
        return loop;
    }

    static JinjaValue Cycle(CallArgs args, int index) =>
        args.Positional.Count == 0
            ? throw new JinjaRuntimeError("no items for cycling given")
            : args.Positional[index % args.Positional.Count];
}
