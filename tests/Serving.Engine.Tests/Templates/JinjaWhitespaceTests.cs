namespace Serving.Engine.Tests.Templates;

/// Whitespace control as transformers configures jinja2: "-" modifiers, trim_blocks, lstrip_blocks, "+"
/// opt-outs, comments, CRLF input and the dropped trailing newline.
public sealed class JinjaWhitespaceTests
{
    [Theory]
    [InlineData("a  {%- if true %}  b  {% endif -%}  c", "a  b  c")]
    [InlineData("line1\n    {% if true %}\n    inside\n    {% endif %}\nline2\n", "line1\n    inside\nline2")]
    [InlineData("x {% if true %}y{% endif %} z", "x y z")]
    [InlineData("  {# c #}\nA\n{#- c -#}\n  B", "AB")]
    [InlineData("{{ 'a' }}\n{{ 'b' -}}\n\n  {{- 'c' }}  \n", "a\nbc  ")]
    [InlineData("<{%+ if true %}k{% endif +%}\n>", "<k\n>")]
    [InlineData("{% for m in messages %}\n  {{ m.role }}\n{% endfor %}\n", "  system\n  user\n  assistant\n")]
    [InlineData("a\n{% set x = 1 %}\n  b{{ x }}\n", "a\n  b1")]
    [InlineData("a\r\nb{% if true %}\r\nc{% endif %}\r\n", "a\nbc")]
    [InlineData("  {% if true %}x{% endif %}", "x")]
    [InlineData("{{ 'v' }}  {% if true %}x{% endif %}", "v  x")]
    [InlineData("t \n\t {%- if true %}x{% endif %}", "tx")]
    [InlineData("{% if true -%}\n\n  x  \n{%- endif %}", "x")]
    [InlineData("{%- for x in l -%}\n  [{{ x }}]\n{%- endfor -%}\n", "[3][1][2]")]
    [InlineData("{% for x in l %}{{ x }}{% endfor %}\n\n", "312")]
    [InlineData("{#- comment -#}   x   {#+ keep +#}  y", "x     y")]
    [InlineData("{% for x in l %}\n{{ x }}\n{% endfor %}", "3\n1\n2\n")]
    [InlineData("{% if true %}   \n   y{% endif %}", "   \n   y")]
    [InlineData("  {{- 'a' -}}  \n  {{ 'b' }}", "ab")]
    public void MatchesJinja2(string template, string expected) => Assert.Equal(expected, JinjaHarness.Render(template));
}
