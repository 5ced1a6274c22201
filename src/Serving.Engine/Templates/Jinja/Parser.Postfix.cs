namespace Serving.Engine.Templates.Jinja;

// Postfix forms: attribute, subscript, slice, call; then filters and tests, which bind tighter than any
// binary operator ("'a' + x | trim" is "'a' + (x | trim)"), as in jinja2.
internal sealed partial class Parser
{
    Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator("."))
            {
                var line = Advance().Line;
                var name = Current.Kind == TokenKind.Integer ? Advance() : Expect(TokenKind.Name, "an attribute name");
                node = name.Kind == TokenKind.Integer
                    ? new ItemExpr(node, new LiteralExpr(new IntValue(long.Parse(name.Value)), line), line)
                    : new AttributeExpr(node, name.Value, line);
            }
            else if (Current.IsOperator("["))
                node = ParseSubscript(node, Advance().Line);
            else if (Current.IsOperator("("))
                node = new CallExpr(node, ParseCallArguments(), node.Line);
            else
                return node;
        }
    }

    Expr ParseSubscript(Expr target, int line)
    {
        Expr? start = null;
        if (!Current.IsOperator(":")) start = ParseExpression();
        if (Current.IsOperator("]") && start is not null)
        {
            Advance();
            return new ItemExpr(target, start, line);
        }
        ExpectOperator(":");
        Expr? stop = null, step = null;
        if (!Current.IsOperator("]") && !Current.IsOperator(":")) stop = ParseExpression();
        if (Current.IsOperator(":"))
        {
            Advance();
            if (!Current.IsOperator("]")) step = ParseExpression();
        }
        ExpectOperator("]");
        return new SliceExpr(target, start, stop, step, line);
    }

    Expr ParseFiltersAndTests(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator("|"))
            {
                var line = Advance().Line;
                var name = Expect(TokenKind.Name, "a filter name").Value;
                var args = Current.IsOperator("(") ? ParseCallArguments() : Arguments.None;
                node = new FilterExpr(node, name, args, line);
            }
            else if (Current.IsName("is"))
                node = ParseTest(node, Advance().Line);
            else if (Current.IsOperator("("))
                node = new CallExpr(node, ParseCallArguments(), node.Line);
            else
                return node;
        }
    }

    TestExpr ParseTest(Expr node, int line)
    {
        var negated = Current.IsName("not");
        if (negated) Advance();
        var name = Expect(TokenKind.Name, "a test name").Value;
        var args = Arguments.None;
        if (Current.IsOperator("("))
            args = ParseCallArguments();
        else if (StartsTestArgument(Current))
            args = new Arguments([ParsePostfix(ParsePrimary())], []);
        return new TestExpr(node, name, args, negated, line);
    }

    /// "x is divisibleby 3", "x is equalto y": a single argument without parentheses.
    static bool StartsTestArgument(Token token) =>
        token.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float
        || (token.Kind == TokenKind.Name && token.Value is not ("else" or "or" or "and" or "if" or "is" or "in" or "not"))
        || token.IsOperator("[") || token.IsOperator("{");

    /// "(" a, b, name=value ")": positional arguments first, then keyword arguments.
    Arguments ParseCallArguments()
    {
        ExpectOperator("(");
        var positional = new List<Expr>();
        var named = new List<(string, Expr)>();
        while (!Current.IsOperator(")"))
        {
            if (positional.Count + named.Count > 0)
            {
                ExpectOperator(",");
                if (Current.IsOperator(")")) break;
            }
            if (Current.Kind == TokenKind.Name && _tokens[_index + 1].IsOperator("="))
            {
                var name = Advance().Value;
                Advance();
                named.Add((name, ParseExpression()));
            }
            else if (named.Count > 0)
                throw TemplateException.Syntax("positional argument follows keyword argument", Current.Line);
            else
                positional.Add(ParseExpression());
        }
        Advance();
        return new Arguments(positional, named);
    }
}
