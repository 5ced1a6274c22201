using System.Globalization;
using System.Text.RegularExpressions;

namespace Serving.Deploy.Tests.Support.Helm;

/// Builds a Pipeline from an action's tokens: commands split on '|', parentheses nest a pipeline.
internal static partial class PipelineParser
{
    static readonly object NotALiteral = new();

    public static Pipeline Parse(IReadOnlyList<string> tokens)
    {
        var position = 0;
        var pipeline = ParsePipeline(tokens, ref position);
        if (position != tokens.Count) throw new FormatException($"unexpected '{tokens[position]}'");
        return pipeline;
    }

    static Pipeline ParsePipeline(IReadOnlyList<string> tokens, ref int position)
    {
        var commands = new List<Command>();
        var operands = new List<Operand>();
        while (position < tokens.Count && tokens[position] != ")")
        {
            var token = tokens[position++];
            if (token == "|") { commands.Add(new Command(operands)); operands = []; continue; }
            if (token == "(")
            {
                operands.Add(new SubPipelineOperand(ParsePipeline(tokens, ref position)));
                if (position >= tokens.Count || tokens[position++] != ")") throw new FormatException("missing ')'");
                continue;
            }
            operands.Add(ParseOperand(token));
        }
        commands.Add(new Command(operands));
        if (commands.Any(c => c.Operands.Count == 0)) throw new FormatException("empty command in pipeline");
        return new Pipeline(commands);
    }

    static Operand ParseOperand(string token)
    {
        if (token == ".") return new FieldOperand([]);
        if (token.StartsWith('.')) return new FieldOperand(token[1..].Split('.'));
        if (token.StartsWith('$'))
        {
            var parts = token.Split('.');
            return new VariableOperand(parts[0], parts.Skip(1).ToArray());
        }
        var literal = ParseLiteral(token);
        if (literal != NotALiteral) return new LiteralOperand(literal);
        if (Identifier().IsMatch(token)) return new FunctionOperand(token);
        throw new FormatException($"unsupported token '{token}'");
    }

    /// The value of a string, number, boolean or nil token; NotALiteral otherwise.
    public static object? ParseLiteral(string token)
    {
        if (token.StartsWith('"')) return System.Text.Json.JsonSerializer.Deserialize<string>(token);
        if (token is "true" or "false") return token == "true";
        if (token == "nil") return null;
        if (long.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
            return integer;
        if (double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out var real)) return real;
        return NotALiteral;
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex Identifier();
}
