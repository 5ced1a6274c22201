using System.Globalization;

namespace Serving.Engine.Templates.Jinja;

// Expression grammar, lowest precedence first (as jinja2's parser):
//   conditional: or ("if" or ("else" conditional)?)?
//   or / and / not / comparison (== != < <= > >= in, not in; chained)
//   "+" "-"  >  "~"  >  "*" "/" "//" "%"  >  "**"  >  unary "-" "+"
//   primary with postfix .attr [index] [a:b:c] (call), then filters "| f(args)" and tests "is [not] t(args)"
internal sealed partial class Parser
{
    const int MaxNesting = 100; // bounds parser recursion, so a hostile template cannot overflow the stack
    int _nesting;

    Expr ParseExpression(bool allowCondition = true)
    {
        if (++_nesting > MaxNesting) throw TemplateException.Syntax("expression nested too deeply", Current.Line);
        try
        {
            return allowCondition ? ParseConditional() : ParseOr();
        }
        finally
        {
            _nesting--;
        }
    }

    /// An expression, or a tuple when commas follow ("a, b" in set and for).
    Expr ParseTuple(bool allowCondition)
    {
        var line = Current.Line;
        var first = ParseExpression(allowCondition);
        if (!Current.IsOperator(",")) return first;
        var items = new List<Expr> { first };
        while (Current.IsOperator(","))
        {
            Advance();
            if (Current.Kind is TokenKind.BlockEnd or TokenKind.VariableEnd || Current.IsName("if")) break;
            items.Add(ParseExpression(allowCondition));
        }
        return new ListExpr(items, IsTuple: true, line);
    }

    Expr ParseConditional()
    {
        var expr = ParseOr();
        while (Current.IsName("if"))
        {
            var line = Advance().Line;
            var condition = ParseOr();
            Expr? otherwise = null;
            if (Current.IsName("else"))
            {
                Advance();
                otherwise = ParseConditional();
            }
            expr = new ConditionalExpr(condition, expr, otherwise, line);
        }
        return expr;
    }

    Expr ParseOr()
    {
        var left = ParseAnd();
        while (Current.IsName("or"))
        {
            var line = Advance().Line;
            left = new BinaryExpr("or", left, ParseAnd(), line);
        }
        return left;
    }

    Expr ParseAnd()
    {
        var left = ParseNot();
        while (Current.IsName("and"))
        {
            var line = Advance().Line;
            left = new BinaryExpr("and", left, ParseNot(), line);
        }
        return left;
    }

    Expr ParseNot()
    {
        if (!Current.IsName("not")) return ParseCompare();
        var line = Advance().Line;
        return new UnaryExpr("not", ParseNot(), line);
    }

    Expr ParseCompare()
    {
        var line = Current.Line;
        var first = ParseAdditive();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            string op;
            if (Current.Kind == TokenKind.Operator && Current.Value is "==" or "!=" or "<" or "<=" or ">" or ">=")
                op = Advance().Value;
            else if (Current.IsName("in"))
                op = Advance().Value;
            else if (Current.IsName("not") && _tokens[_index + 1].IsName("in"))
            {
                _index += 2;
                op = "not in";
            }
            else break;
            rest.Add((op, ParseAdditive()));
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest, line);
    }

    Expr ParseAdditive() => ParseBinary(["+", "-"], ParseConcat);

    Expr ParseConcat() => ParseBinary(["~"], ParseMultiplicative);

    Expr ParseMultiplicative() => ParseBinary(["*", "/", "//", "%"], ParsePower);

    Expr ParsePower() => ParseBinary(["**"], () => ParseUnary(withFilters: true));

    Expr ParseBinary(string[] operators, Func<Expr> operand)
    {
        var left = operand();
        while (Current.Kind == TokenKind.Operator && operators.Contains(Current.Value))
        {
            var token = Advance();
            left = new BinaryExpr(token.Value, left, operand(), token.Line);
        }
        return left;
    }

    Expr ParseUnary(bool withFilters)
    {
        Expr node;
        if (Current.IsOperator("-") || Current.IsOperator("+"))
        {
            var token = Advance();
            if (++_nesting > MaxNesting) throw TemplateException.Syntax("expression nested too deeply", token.Line);
            node = new UnaryExpr(token.Value, ParseUnary(withFilters: false), token.Line);
            _nesting--;
        }
        else node = ParsePrimary();
        node = ParsePostfix(node);
        return withFilters ? ParseFiltersAndTests(node) : node;
    }

    Expr ParsePrimary()
    {
        var token = Advance();
        switch (token.Kind)
        {
            case TokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new LiteralExpr(BoolValue.True, token.Line),
                    "false" or "False" => new LiteralExpr(BoolValue.False, token.Line),
                    "none" or "None" => new LiteralExpr(NoneValue.Instance, token.Line),
                    _ => new NameExpr(token.Value, token.Line),
                };
            case TokenKind.String:
                var text = token.Value;
                while (Current.Kind == TokenKind.String) text += Advance().Value; // "a" "b" is "ab"
                return new LiteralExpr(new StringValue(text), token.Line);
            case TokenKind.Integer:
                if (!long.TryParse(token.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var integer))
                    throw TemplateException.Syntax($"integer literal too large: {token.Value}", token.Line);
                return new LiteralExpr(new IntValue(integer), token.Line);
            case TokenKind.Float:
                return new LiteralExpr(new FloatValue(double.Parse(token.Value, CultureInfo.InvariantCulture)), token.Line);
            case TokenKind.Operator when token.Value == "(":
                return ParseParenthesized(token.Line);
            case TokenKind.Operator when token.Value == "[":
                return new ListExpr(ParseSequence("]"), IsTuple: false, token.Line);
            case TokenKind.Operator when token.Value == "{":
                return ParseDict(token.Line);
            default:
                throw TemplateException.Syntax($"unexpected {token} in expression", token.Line);
        }
    }

    Expr ParseParenthesized(int line)
    {
        if (Current.IsOperator(")"))
        {
            Advance();
            return new ListExpr([], IsTuple: true, line);
        }
        var first = ParseExpression();
        if (Current.IsOperator(")"))
        {
            Advance();
            return first;
        }
        ExpectOperator(",");
        var items = new List<Expr> { first };
        items.AddRange(ParseSequence(")"));
        return new ListExpr(items, IsTuple: true, line);
    }

    /// Comma-separated expressions up to `close` (consumed); a trailing comma is allowed.
    List<Expr> ParseSequence(string close)
    {
        var items = new List<Expr>();
        while (!Current.IsOperator(close))
        {
            if (items.Count > 0)
            {
                ExpectOperator(",");
                if (Current.IsOperator(close)) break;
            }
            items.Add(ParseExpression());
        }
        Advance();
        return items;
    }

    DictExpr ParseDict(int line)
    {
        var pairs = new List<(Expr, Expr)>();
        while (!Current.IsOperator("}"))
        {
            if (pairs.Count > 0)
            {
                ExpectOperator(",");
                if (Current.IsOperator("}")) break;
            }
            var key = ParseExpression();
            ExpectOperator(":");
            pairs.Add((key, ParseExpression()));
        }
        Advance();
        return new DictExpr(pairs, line);
    }
}
