using System.Text;

namespace Serving.Engine.Templates.Jinja;

/// Splits template source into tokens the way jinja2's lexer does with trim_blocks=True and
/// lstrip_blocks=True (transformers' environment):
/// - "{%-", "{{-", "{#-" strip all whitespace before the tag; "-%}", "-}}", "-#}" strip all after it.
/// - trim_blocks: a plain "%}" or "#}" eats the single "\n" that follows it.
/// - lstrip_blocks: spaces/tabs between a line start and "{%" or "{#" are dropped ("{%+" keeps them).
/// Comments produce no tokens.
internal sealed class Lexer
{
    readonly string _src;
    readonly List<Token> _tokens = [];
    int _pos;
    int _line = 1;
    // Whether the text just consumed by the previous tag end finished a line (jinja2's line_starting).
    bool _lineStarting = true;

    // jinja2 normalizes line endings and drops one trailing newline (keep_trailing_newline=False).
    Lexer(string source)
    {
        var normalized = source.Replace("\r\n", "\n").Replace('\r', '\n');
        _src = normalized.EndsWith('\n') ? normalized[..^1] : normalized;
    }

    public static List<Token> Tokenize(string source)
    {
        var lexer = new Lexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    void Run()
    {
        while (_pos < _src.Length)
        {
            var tagStart = FindTagStart(_pos);
            var text = _src[_pos..(tagStart < 0 ? _src.Length : tagStart)];
            if (tagStart < 0)
            {
                EmitText(text, text);
                _pos = _src.Length;
                break;
            }
            var kind = _src[tagStart + 1];
            var sign = tagStart + 2 < _src.Length ? _src[tagStart + 2] : '\0';
            EmitText(ApplyLeftWhitespaceControl(text, kind, sign), text);
            _pos = tagStart + 2 + (sign == '-' || (sign == '+' && kind != '{') ? 1 : 0);
            if (kind == '#') SkipComment();
            else LexTag(kind == '{');
        }
        _tokens.Add(new Token(TokenKind.End, "", _line));
    }

    int FindTagStart(int from)
    {
        for (var i = _src.IndexOf('{', from); i >= 0 && i + 1 < _src.Length; i = _src.IndexOf('{', i + 1))
            if (_src[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    string ApplyLeftWhitespaceControl(string text, char kind, char sign)
    {
        if (sign == '-') return text.TrimEnd();
        if (sign == '+' || kind == '{') return text;
        // lstrip_blocks: only whitespace between the last line start and the tag.
        var lineStart = text.LastIndexOf('\n') + 1;
        if (lineStart == 0 && !_lineStarting) return text;
        for (var i = lineStart; i < text.Length; i++)
            if (!char.IsWhiteSpace(text[i])) return text;
        return text[..lineStart];
    }

    /// Emits `text` (whitespace control applied); line counting follows the source segment it came from.
    void EmitText(string text, string sourceSegment)
    {
        if (text.Length > 0) _tokens.Add(new Token(TokenKind.Text, text, _line));
        _line += CountNewlines(sourceSegment);
    }

    void SkipComment()
    {
        var end = _src.IndexOf("#}", _pos, StringComparison.Ordinal);
        if (end < 0) throw TemplateException.Syntax("unclosed comment", _line);
        var sign = _src[end - 1];
        _line += CountNewlines(_src[_pos..end]);
        _pos = end + 2;
        FinishTag(sign, isBlock: true);
    }

    /// After a tag end: "-" strips all following whitespace, a plain block end eats one newline.
    void FinishTag(char sign, bool isBlock)
    {
        var start = _pos;
        if (sign == '-')
            while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos])) _pos++;
        else if (sign != '+' && isBlock && _pos < _src.Length && _src[_pos] == '\n')
            _pos++;
        var consumed = _src[start.._pos];
        _line += CountNewlines(consumed);
        _lineStarting = consumed.EndsWith('\n');
    }

    void LexTag(bool isVariable)
    {
        var startLine = _line;
        _tokens.Add(new Token(isVariable ? TokenKind.VariableBegin : TokenKind.BlockBegin, "", _line));
        var depth = 0; // open ( [ { so that "}}" inside a dict literal is not taken as the tag end
        while (true)
        {
            SkipWhitespace();
            if (_pos >= _src.Length) throw TemplateException.Syntax("unclosed tag", startLine);
            if (depth == 0 && TryTagEnd(isVariable)) return;
            var token = ExpressionLexer.Next(_src, ref _pos, _line);
            if (token.Kind == TokenKind.Operator)
                depth += token.Value is "(" or "[" or "{" ? 1 : token.Value is ")" or "]" or "}" ? -1 : 0;
            _tokens.Add(token);
        }
    }

    bool TryTagEnd(bool isVariable)
    {
        var end = isVariable ? "}}" : "%}";
        var sign = _src[_pos] is '-' or '+' ? _src[_pos] : '\0';
        var at = sign == '\0' ? _pos : _pos + 1;
        if (string.CompareOrdinal(_src, at, end, 0, 2) != 0) return false;
        if (sign == '+' && isVariable) return false;
        _tokens.Add(new Token(isVariable ? TokenKind.VariableEnd : TokenKind.BlockEnd, "", _line));
        _pos = at + 2;
        FinishTag(sign, isBlock: !isVariable);
        return true;
    }

    void SkipWhitespace()
    {
        while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos]))
        {
            if (_src[_pos] == '\n') _line++;
            _pos++;
        }
    }

    static int CountNewlines(string s)
    {
        var n = 0;
        foreach (var c in s) if (c == '\n') n++;
        return n;
    }
}
