namespace Serving.Engine.Templates.Jinja;

// The syntax tree. Every node carries its 1-based template line for error messages.

internal abstract record Node(int Line);

// ---- statements ----

internal sealed record TextNode(string Text, int Line) : Node(Line);

internal sealed record OutputNode(Expr Value, int Line) : Node(Line);

internal sealed record IfBranch(Expr Condition, IReadOnlyList<Node> Body);

internal sealed record IfNode(IReadOnlyList<IfBranch> Branches, IReadOnlyList<Node> Else, int Line) : Node(Line);

/// {% for a, b in iterable if filter %} body {% else %} elseBody {% endfor %}
internal sealed record ForNode(
    IReadOnlyList<string> Targets, Expr Iterable, Expr? Filter, IReadOnlyList<Node> Body, IReadOnlyList<Node> Else, int Line)
    : Node(Line);

/// {% set name = value %}, {% set a, b = value %} or {% set ns.attr = value %} (Attribute non-null).
internal sealed record SetNode(IReadOnlyList<string> Targets, string? Attribute, Expr Value, int Line) : Node(Line);

/// {% set name %}body{% endset %}
internal sealed record SetBlockNode(string Target, IReadOnlyList<Node> Body, int Line) : Node(Line);

internal sealed record MacroParameter(string Name, Expr? Default);

internal sealed record MacroNode(string Name, IReadOnlyList<MacroParameter> Parameters, IReadOnlyList<Node> Body, int Line)
    : Node(Line);

/// {% call(params) macro(args) %}body{% endcall %}: calls the macro with `caller` rendering body.
internal sealed record CallBlockNode(CallExpr Call, MacroNode Caller, int Line) : Node(Line);

/// {% filter name(args) | name2 %}body{% endfilter %}: the body's text through the filters, left to right.
internal sealed record FilterBlockNode(IReadOnlyList<(string Name, Arguments Args)> Filters, IReadOnlyList<Node> Body, int Line)
    : Node(Line);

internal sealed record BreakNode(int Line) : Node(Line);

internal sealed record ContinueNode(int Line) : Node(Line);

// ---- expressions ----

internal abstract record Expr(int Line) : Node(Line);

internal sealed record LiteralExpr(JinjaValue Value, int Line) : Expr(Line);

internal sealed record NameExpr(string Name, int Line) : Expr(Line);

internal sealed record ListExpr(IReadOnlyList<Expr> Items, bool IsTuple, int Line) : Expr(Line);

internal sealed record DictExpr(IReadOnlyList<(Expr Key, Expr Value)> Pairs, int Line) : Expr(Line);

/// obj.name
internal sealed record AttributeExpr(Expr Target, string Name, int Line) : Expr(Line);

/// obj[index]
internal sealed record ItemExpr(Expr Target, Expr Index, int Line) : Expr(Line);

/// obj[start:stop:step]
internal sealed record SliceExpr(Expr Target, Expr? Start, Expr? Stop, Expr? Step, int Line) : Expr(Line);

internal sealed record Arguments(IReadOnlyList<Expr> Positional, IReadOnlyList<(string Name, Expr Value)> Named)
{
    public static readonly Arguments None = new([], []);
}

internal sealed record CallExpr(Expr Callee, Arguments Args, int Line) : Expr(Line);

/// value | name(args)
internal sealed record FilterExpr(Expr Value, string Name, Arguments Args, int Line) : Expr(Line);

/// value is [not] name(args)
internal sealed record TestExpr(Expr Value, string Name, Arguments Args, bool Negated, int Line) : Expr(Line);

/// Unary "-", "+" and "not".
internal sealed record UnaryExpr(string Operator, Expr Operand, int Line) : Expr(Line);

/// Arithmetic (+ - * / // % **), concatenation (~), and short-circuit "and" / "or".
internal sealed record BinaryExpr(string Operator, Expr Left, Expr Right, int Line) : Expr(Line);

/// A chained comparison: first op1 e1 op2 e2 ... (== != < <= > >= in "not in").
internal sealed record CompareExpr(Expr First, IReadOnlyList<(string Operator, Expr Operand)> Rest, int Line) : Expr(Line);

/// then if condition else otherwise (otherwise null means undefined)
internal sealed record ConditionalExpr(Expr Condition, Expr Then, Expr? Otherwise, int Line) : Expr(Line);
