namespace Serving.Engine.Templates.Jinja;

/// jinja2 refuses an unknown filter or test when it compiles a template, except inside an if statement (its
/// conditions and branches) or an `a if c else b` expression: there the error waits until the filter or test runs
/// (its "soft" frames), so a template may name one its chats never reach (DeepSeek-V3.2's `from_json`). A for loop's
/// body and filter, a macro, a call or filter block and a set block start a frame that is not soft again.
internal static class KnownNames
{
    public static void Check(IReadOnlyList<Node> template) => Visit(template, soft: false);

    static void Visit(IReadOnlyList<Node> nodes, bool soft)
    {
        foreach (var node in nodes) Visit(node, soft);
    }

    static void Visit(Node node, bool soft)
    {
        switch (node)
        {
            case OutputNode o: Visit(o.Value, soft); break;
            case IfNode i:
                foreach (var branch in i.Branches)
                {
                    Visit(branch.Condition, soft: true);
                    Visit(branch.Body, soft: true);
                }
                Visit(i.Else, soft: true);
                break;
            case ForNode f:
                Visit(f.Iterable, soft);
                if (f.Filter is { } filter) Visit(filter, soft: false);
                Visit(f.Body, soft: false);
                Visit(f.Else, soft: false);
                break;
            case SetNode s: Visit(s.Value, soft); break;
            case SetBlockNode b: Visit(b.Body, soft: false); break;
            case FilterBlockNode f:
                foreach (var (name, args) in f.Filters)
                {
                    CheckFilter(name, f.Line, soft: false);
                    Visit(args, soft: false);
                }
                Visit(f.Body, soft: false);
                break;
            case MacroNode m:
                foreach (var parameter in m.Parameters)
                    if (parameter.Default is { } value) Visit(value, soft: false);
                Visit(m.Body, soft: false);
                break;
            case CallBlockNode c:
                Visit(c.Call, soft);
                Visit(c.Caller, soft);
                break;
            case Expr e: Visit(e, soft); break;
        }
    }

    static void Visit(Expr expr, bool soft)
    {
        switch (expr)
        {
            case ListExpr l:
                foreach (var item in l.Items) Visit(item, soft);
                break;
            case DictExpr d:
                foreach (var (key, value) in d.Pairs)
                {
                    Visit(key, soft);
                    Visit(value, soft);
                }
                break;
            case AttributeExpr a: Visit(a.Target, soft); break;
            case ItemExpr i:
                Visit(i.Target, soft);
                Visit(i.Index, soft);
                break;
            case SliceExpr s:
                Visit(s.Target, soft);
                foreach (var part in new[] { s.Start, s.Stop, s.Step })
                    if (part is not null) Visit(part, soft);
                break;
            case CallExpr c:
                Visit(c.Callee, soft);
                Visit(c.Args, soft);
                break;
            case FilterExpr f:
                CheckFilter(f.Name, f.Line, soft);
                Visit(f.Value, soft);
                Visit(f.Args, soft);
                break;
            case TestExpr t:
                if (!soft && !Predicates.Exists(t.Name)) throw TemplateException.Syntax($"no test named '{t.Name}'", t.Line);
                Visit(t.Value, soft);
                Visit(t.Args, soft);
                break;
            case UnaryExpr u: Visit(u.Operand, soft); break;
            case BinaryExpr b:
                Visit(b.Left, soft);
                Visit(b.Right, soft);
                break;
            case CompareExpr c:
                Visit(c.First, soft);
                foreach (var (_, operand) in c.Rest) Visit(operand, soft);
                break;
            case ConditionalExpr c:
                Visit(c.Condition, soft: true);
                Visit(c.Then, soft: true);
                if (c.Otherwise is { } otherwise) Visit(otherwise, soft: true);
                break;
        }
    }

    static void Visit(Arguments args, bool soft)
    {
        foreach (var value in args.Positional) Visit(value, soft);
        foreach (var (_, value) in args.Named) Visit(value, soft);
    }

    static void CheckFilter(string name, int line, bool soft)
    {
        if (!soft && !Filters.Exists(name)) throw TemplateException.Syntax($"no filter named '{name}'", line);
    }
}
