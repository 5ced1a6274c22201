namespace Serving.Engine.Templates.Jinja;

/// Builds the syntax tree from tokens: the statement half (this file) and the expression half
/// (Parser.Expressions.cs). Supported tags: for/else/endfor, if/elif/else/endif, set (plain, tuple,
/// namespace attribute, block), macro/endmacro, call/endcall, filter/endfilter, break, continue,
/// generation/endgeneration. Filter and test names are checked once the tree is built (KnownNames).
internal sealed partial class Parser
{
    readonly List<Token> _tokens;
    int _index;

    Parser(List<Token> tokens) => _tokens = tokens;

    public static IReadOnlyList<Node> Parse(string source)
    {
        var parser = new Parser(Lexer.Tokenize(source));
        var (body, stop) = parser.ParseBody([]);
        if (stop is not null) throw TemplateException.Syntax($"unexpected '{stop}'", parser.Current.Line);
        KnownNames.Check(body);
        return body;
    }

    Token Current => _tokens[_index];

    Token Advance() => _tokens[_index++];

    /// Parses nodes until the end of input or a block tag named in `stopAt`; then the tag name is current.
    (List<Node> Body, string? Stop) ParseBody(IReadOnlyCollection<string> stopAt)
    {
        var body = new List<Node>();
        while (Current.Kind != TokenKind.End)
        {
            var token = Advance();
            switch (token.Kind)
            {
                case TokenKind.Text:
                    body.Add(new TextNode(token.Value, token.Line));
                    break;
                case TokenKind.VariableBegin:
                    body.Add(new OutputNode(ParseExpression(), token.Line));
                    Expect(TokenKind.VariableEnd, "'}}'");
                    break;
                case TokenKind.BlockBegin:
                    var name = Current;
                    if (name.Kind == TokenKind.Name && stopAt.Contains(name.Value)) return (body, name.Value);
                    body.AddRange(ParseStatement());
                    break;
                default:
                    throw TemplateException.Syntax($"unexpected {token}", token.Line);
            }
        }
        if (stopAt.Count > 0)
        {
            var expected = string.Join(" or ", stopAt.Select(tag => $"{{% {tag} %}}"));
            throw TemplateException.Syntax($"unexpected end of template, expected {expected}", Current.Line);
        }
        return (body, null);
    }

    IEnumerable<Node> ParseStatement()
    {
        var keyword = Expect(TokenKind.Name, "a statement name");
        switch (keyword.Value)
        {
            case "for": return [ParseFor(keyword.Line)];
            case "if": return [ParseIf(keyword.Line)];
            case "set": return [ParseSet(keyword.Line)];
            case "macro": return [ParseMacro(keyword.Line)];
            case "call": return [ParseCallBlock(keyword.Line)];
            case "filter": return [ParseFilterBlock(keyword.Line)];
            case "break": ExpectBlockEnd(); return [new BreakNode(keyword.Line)];
            case "continue": ExpectBlockEnd(); return [new ContinueNode(keyword.Line)];
            case "generation": return ParseGeneration();
            default: throw TemplateException.Syntax($"unknown or unsupported tag '{keyword.Value}'", keyword.Line);
        }
    }

    ForNode ParseFor(int line)
    {
        var targets = ParseTargetNames();
        ExpectName("in");
        var iterable = ParseTuple(allowCondition: false);
        Expr? filter = null;
        if (Current.IsName("if"))
        {
            Advance();
            filter = ParseExpression();
        }
        if (Current.IsName("recursive")) throw TemplateException.Syntax("recursive loops are not supported", Current.Line);
        ExpectBlockEnd();
        var (body, stop) = ParseBody(["else", "endfor"]);
        List<Node> elseBody = [];
        if (stop == "else")
        {
            Advance();
            ExpectBlockEnd();
            (elseBody, _) = ParseBody(["endfor"]);
        }
        Advance();
        ExpectBlockEnd();
        return new ForNode(targets, iterable, filter, body, elseBody, line);
    }

    IfNode ParseIf(int line)
    {
        var branches = new List<IfBranch>();
        var condition = ParseTuple(allowCondition: false);
        while (true)
        {
            ExpectBlockEnd();
            var (body, stop) = ParseBody(["elif", "else", "endif"]);
            branches.Add(new IfBranch(condition, body));
            Advance();
            if (stop == "elif")
            {
                condition = ParseTuple(allowCondition: false);
                continue;
            }
            List<Node> elseBody = [];
            if (stop == "else")
            {
                ExpectBlockEnd();
                (elseBody, _) = ParseBody(["endif"]);
                Advance();
            }
            ExpectBlockEnd();
            return new IfNode(branches, elseBody, line);
        }
    }

    Node ParseSet(int line)
    {
        var first = Expect(TokenKind.Name, "a variable name");
        if (Current.IsOperator("."))
        {
            Advance();
            var attribute = Expect(TokenKind.Name, "an attribute name").Value;
            ExpectOperator("=");
            var value = ParseTuple(allowCondition: true);
            ExpectBlockEnd();
            return new SetNode([first.Value], attribute, value, line);
        }
        var targets = new List<string> { first.Value };
        while (Current.IsOperator(","))
        {
            Advance();
            targets.Add(Expect(TokenKind.Name, "a variable name").Value);
        }
        if (Current.Kind == TokenKind.BlockEnd && targets.Count == 1)
        {
            Advance();
            var (body, _) = ParseBody(["endset"]);
            Advance();
            ExpectBlockEnd();
            return new SetBlockNode(first.Value, body, line);
        }
        ExpectOperator("=");
        var expr = ParseTuple(allowCondition: true);
        ExpectBlockEnd();
        return new SetNode(targets, null, expr, line);
    }

    MacroNode ParseMacro(int line)
    {
        var name = Expect(TokenKind.Name, "a macro name").Value;
        var parameters = ParseParameters(line);
        ExpectBlockEnd();
        var (body, _) = ParseBody(["endmacro"]);
        Advance();
        ExpectBlockEnd();
        return new MacroNode(name, parameters, body, line);
    }

    CallBlockNode ParseCallBlock(int line)
    {
        var callerParameters = Current.IsOperator("(") ? ParseParameters(line) : [];
        if (ParseExpression() is not CallExpr call) throw TemplateException.Syntax("{% call %} needs a macro call", line);
        ExpectBlockEnd();
        var (body, _) = ParseBody(["endcall"]);
        Advance();
        ExpectBlockEnd();
        return new CallBlockNode(call, new MacroNode("caller", callerParameters, body, line), line);
    }

    /// "(" name ("=" default)? ("," ...)* ")" of a macro or a call block.
    List<MacroParameter> ParseParameters(int line)
    {
        ExpectOperator("(");
        var parameters = new List<MacroParameter>();
        while (!Current.IsOperator(")"))
        {
            if (parameters.Count > 0) ExpectOperator(",");
            var parameter = Expect(TokenKind.Name, "a parameter name").Value;
            Expr? defaultValue = null;
            if (Current.IsOperator("="))
            {
                Advance();
                defaultValue = ParseExpression();
            }
            else if (parameters.Count > 0 && parameters[^1].Default is not null)
                throw TemplateException.Syntax("non-default argument follows default argument", line);
            parameters.Add(new MacroParameter(parameter, defaultValue));
        }
        Advance();
        return parameters;
    }

    FilterBlockNode ParseFilterBlock(int line)
    {
        var filters = new List<(string, Arguments)>();
        do
        {
            if (filters.Count > 0) Advance();   // the '|' between two filters
            var name = Expect(TokenKind.Name, "a filter name").Value;
            filters.Add((name, Current.IsOperator("(") ? ParseCallArguments() : Arguments.None));
        } while (Current.IsOperator("|"));
        ExpectBlockEnd();
        var (body, _) = ParseBody(["endfilter"]);
        Advance();
        ExpectBlockEnd();
        return new FilterBlockNode(filters, body, line);
    }

    /// transformers' {% generation %} marks assistant text for masks; for rendering it is transparent.
    List<Node> ParseGeneration()
    {
        ExpectBlockEnd();
        var (body, _) = ParseBody(["endgeneration"]);
        Advance();
        ExpectBlockEnd();
        return body;
    }

    List<string> ParseTargetNames()
    {
        var parenthesized = Current.IsOperator("(");
        if (parenthesized) Advance();
        var names = new List<string> { Expect(TokenKind.Name, "a loop variable").Value };
        while (Current.IsOperator(","))
        {
            Advance();
            names.Add(Expect(TokenKind.Name, "a loop variable").Value);
        }
        if (parenthesized) ExpectOperator(")");
        return names;
    }

    Token Expect(TokenKind kind, string what)
    {
        if (Current.Kind != kind) throw TemplateException.Syntax($"expected {what}, got {Current}", Current.Line);
        return Advance();
    }

    void ExpectBlockEnd() => Expect(TokenKind.BlockEnd, "'%}'");

    void ExpectName(string name)
    {
        if (!Current.IsName(name)) throw TemplateException.Syntax($"expected '{name}', got {Current}", Current.Line);
        Advance();
    }

    void ExpectOperator(string op)
    {
        if (!Current.IsOperator(op)) throw TemplateException.Syntax($"expected '{op}', got {Current}", Current.Line);
        Advance();
    }
}
