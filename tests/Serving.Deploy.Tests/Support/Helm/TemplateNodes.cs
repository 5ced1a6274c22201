namespace Serving.Deploy.Tests.Support.Helm;

/// The parsed form of a Go text/template, limited to what Helm charts commonly use:
/// text, {{ pipeline }}, if / else if / else, range (with $key, $value :=), with, define, comments.
internal abstract record TemplateNode;

internal sealed record TextNode(string Text) : TemplateNode;

/// {{ pipeline }}: prints the pipeline's value.
internal sealed record ActionNode(Pipeline Pipeline) : TemplateNode;

/// {{ if }} ... {{ else if }} ... {{ else }} ... {{ end }}; else-if chains nest in Else.
internal sealed record IfNode(Pipeline Condition, IReadOnlyList<TemplateNode> Then, IReadOnlyList<TemplateNode> Else)
    : TemplateNode;

/// {{ range $key, $value := pipeline }}: dot becomes each element; maps iterate in sorted key order.
internal sealed record RangeNode(string? KeyVariable, string? ValueVariable, Pipeline Source,
    IReadOnlyList<TemplateNode> Body) : TemplateNode;

/// {{ with pipeline }}: dot becomes the value when it is not empty.
internal sealed record WithNode(Pipeline Value, IReadOnlyList<TemplateNode> Body, IReadOnlyList<TemplateNode> Else)
    : TemplateNode;

/// Commands joined by '|': each command's value is passed as the last argument of the next.
internal sealed record Pipeline(IReadOnlyList<Command> Commands);

/// A function call (name plus arguments) or a single operand.
internal sealed record Command(IReadOnlyList<Operand> Operands);

internal abstract record Operand;

/// .Values.image.tag (Path empty for '.').
internal sealed record FieldOperand(IReadOnlyList<string> Path) : Operand;

/// $ or $name, optionally followed by fields: $.Values.x, $value.name.
internal sealed record VariableOperand(string Name, IReadOnlyList<string> Path) : Operand;

internal sealed record LiteralOperand(object? Value) : Operand;

internal sealed record FunctionOperand(string Name) : Operand;

internal sealed record SubPipelineOperand(Pipeline Pipeline) : Operand;
