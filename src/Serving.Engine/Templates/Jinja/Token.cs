namespace Serving.Engine.Templates.Jinja;

internal enum TokenKind
{
    Text,          // literal template text, whitespace control already applied
    VariableBegin, // {{
    VariableEnd,   // }}
    BlockBegin,    // {%
    BlockEnd,      // %}
    Name,
    String,        // value is the unescaped string
    Integer,
    Float,
    Operator,      // + - * / // % ** ~ == != < <= > >= ( ) [ ] { } , . : | =
    End,
}

internal readonly record struct Token(TokenKind Kind, string Value, int Line)
{
    public bool Is(TokenKind kind, string value) => Kind == kind && Value == value;

    public bool IsOperator(string op) => Is(TokenKind.Operator, op);

    public bool IsName(string name) => Is(TokenKind.Name, name);

    public override string ToString() => Kind switch
    {
        TokenKind.End => "end of template",
        TokenKind.VariableBegin => "'{{'",
        TokenKind.VariableEnd => "'}}'",
        TokenKind.BlockBegin => "'{%'",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.Text => "template text",
        _ => $"'{Value}'",
    };
}
