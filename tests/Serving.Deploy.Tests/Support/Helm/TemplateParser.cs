namespace Serving.Deploy.Tests.Support.Helm;

/// Parses Go text/template source into nodes. Definitions ({{ define "name" }}) are collected apart.
/// Unsupported syntax throws, so a chart that outgrows this subset fails its tests loudly.
internal sealed class TemplateParser
{
    readonly List<(bool IsAction, string Text)> _items;
    readonly Dictionary<string, IReadOnlyList<TemplateNode>> _definitions;
    int _next;

    TemplateParser(string source, Dictionary<string, IReadOnlyList<TemplateNode>> definitions)
    {
        _items = TemplateLexer.Split(source);
        _definitions = definitions;
    }

    /// Parses source; its {{ define }} blocks are added to definitions.
    public static IReadOnlyList<TemplateNode> Parse(string source, Dictionary<string, IReadOnlyList<TemplateNode>> definitions)
    {
        var parser = new TemplateParser(source, definitions);
        var (nodes, terminator) = parser.ParseList();
        if (terminator != null) throw new FormatException($"unexpected {{{{ {terminator} }}}}");
        return nodes;
    }

    /// Parses nodes up to an {{ end }} or {{ else ... }}, which is returned (null at the end of input).
    (List<TemplateNode> Nodes, string? Terminator) ParseList()
    {
        var nodes = new List<TemplateNode>();
        while (_next < _items.Count)
        {
            var (isAction, text) = _items[_next++];
            if (!isAction) { nodes.Add(new TextNode(text)); continue; }
            var tokens = TemplateLexer.Tokenize(text);
            if (tokens.Count == 0) continue; // a comment
            switch (tokens[0])
            {
                case "end":
                case "else":
                    return (nodes, string.Join(' ', tokens));
                case "if": nodes.Add(ParseIf(tokens.Skip(1).ToList())); break;
                case "range": nodes.Add(ParseRange(tokens.Skip(1).ToList())); break;
                case "with": nodes.Add(ParseWith(tokens.Skip(1).ToList())); break;
                case "define": ParseDefine(tokens); break;
                default: nodes.Add(new ActionNode(PipelineParser.Parse(tokens))); break;
            }
        }
        return (nodes, null);
    }

    IfNode ParseIf(List<string> condition)
    {
        var (then, terminator) = ParseList();
        var elseNodes = new List<TemplateNode>();
        if (terminator == "else")
            elseNodes = ExpectEnd(ParseList());
        else if (terminator != null && terminator.StartsWith("else if ", StringComparison.Ordinal))
            elseNodes = [ParseIf(TemplateLexer.Tokenize(terminator["else if ".Length..]))];
        else if (terminator != "end")
            throw new FormatException($"if without end (got {terminator ?? "end of input"})");
        return new IfNode(PipelineParser.Parse(condition), then, elseNodes);
    }

    RangeNode ParseRange(List<string> tokens)
    {
        string? key = null, value = null;
        var declaration = tokens.IndexOf(":=");
        if (declaration >= 0)
        {
            var names = tokens.Take(declaration).Where(t => t != ",").ToList();
            (key, value) = names.Count == 2 ? (names[0], names[1]) : (null, names.Single());
            tokens = tokens.Skip(declaration + 1).ToList();
        }
        var body = ExpectEnd(ParseList());
        return new RangeNode(key, value, PipelineParser.Parse(tokens), body);
    }

    WithNode ParseWith(List<string> tokens)
    {
        var (body, terminator) = ParseList();
        var elseNodes = terminator == "else" ? ExpectEnd(ParseList()) : new List<TemplateNode>();
        if (terminator != "else" && terminator != "end") throw new FormatException("with without end");
        return new WithNode(PipelineParser.Parse(tokens), body, elseNodes);
    }

    void ParseDefine(List<string> tokens)
    {
        if (tokens.Count != 2 || PipelineParser.ParseLiteral(tokens[1]) is not string name)
            throw new FormatException("define takes one quoted name");
        _definitions[name] = ExpectEnd(ParseList());
    }

    static List<TemplateNode> ExpectEnd((List<TemplateNode> Nodes, string? Terminator) parsed) =>
        parsed.Terminator == "end" ? parsed.Nodes
            : throw new FormatException($"expected {{{{ end }}}}, got {parsed.Terminator ?? "end of input"}");
}
