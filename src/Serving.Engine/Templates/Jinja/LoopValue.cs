namespace Serving.Engine.Templates.Jinja;

/// The "loop" variable of a for-loop iteration (jinja2's LoopContext, without recursion). Attributes are
/// computed when read, so an iteration costs no allocation beyond this object.
internal sealed class LoopValue(IReadOnlyList<JinjaValue> items, int index) : JinjaValue
{
    public override bool IsTruthy => true;
    public override string TypeName => "LoopContext";

    int Count => items.Count;

    public JinjaValue? Get(string name) => name switch
    {
        "index" => new IntValue(index + 1),
        "index0" => new IntValue(index),
        "revindex" => new IntValue(Count - index),
        "revindex0" => new IntValue(Count - index - 1),
        "first" => BoolValue.Of(index == 0),
        "last" => BoolValue.Of(index == Count - 1),
        "length" => new IntValue(Count),
        "depth" => new IntValue(1),
        "depth0" => new IntValue(0),
        "previtem" => index > 0 ? items[index - 1] : new UndefinedValue("previtem"),
        "nextitem" => index < Count - 1 ? items[index + 1] : new UndefinedValue("nextitem"),
        "cycle" => new CallableValue("cycle", Cycle),
        _ => null,
    };

    public override string ToString() => $"<LoopContext {index + 1}/{Count}>";

    JinjaValue Cycle(CallArgs args) =>
        args.Positional.Count == 0
            ? throw new JinjaRuntimeError("no items for cycling given")
            : args.Positional[index % args.Positional.Count];
}
