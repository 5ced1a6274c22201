namespace Serving.Engine.Tests.Templates;

/// for (loop.*, filters, else, unpacking, break/continue, scoping), if/elif/else, set (tuple, block,
/// namespace attributes), macros, call and filter blocks, compared with jinja2's output; an unknown filter or test
/// inside an if (or `a if c else b`) fails only if it runs, as jinja2's soft frames let it.
public sealed class JinjaStatementTests
{
    [Theory]
    [InlineData("{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}", "1/0/3/2/True/False/3;2/1/2/1/False/False/3;3/2/1/0/False/True/3;")]
    [InlineData("{% for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }}{{ ',' if not loop.last }}{% endfor %}", "1:user,2:assistant")]
    [InlineData("{% for x in e %}{{ x }}{% else %}empty{% endfor %}", "empty")]
    [InlineData("{% for k, v in d.items() %}{{ k }}={{ v }} {% endfor %}|{% for k, v in d | items %}{{ k }}{% endfor %}|{% for k in d %}{{ k }}{% endfor %}", "b=2 a=1 C=3 |baC|baC")]
    [InlineData("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", "0134")]
    [InlineData("{% for x in l %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('a','b') }} {% endfor %}", "-1-a 3-2-b 1--a ")]
    [InlineData("{% for a in [1,2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}", "1x1 1y2 1|2x1 2y2 2|")]
    [InlineData("{% set ns = namespace(found=false, n=0) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.found }} {{ ns.n }}", "True 3")]
    [InlineData("{% set y = 1 %}{% for x in l %}{% set y = x %}{% endfor %}{{ y }}", "1")]
    [InlineData("{% for x in range(3, 10, 3) %}{{ x }}{% endfor %}{% for x in range(5, 0, -2) %}{{ x }}{% endfor %}", "369531")]
    [InlineData("{% set a, b = 1, 'two' %}{{ a }}{{ b }}{% set c %}block {{ a }}{% endset %}[{{ c }}]", "1two[block 1]")]
    [InlineData("{% if true %}{% set z = 5 %}{% endif %}{{ z }}", "5")]
    [InlineData("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', '?') }} {{ greet(name='Cy', punct='.') }}", "Hi Ann! Hi Bob? Hi Cy.")]
    [InlineData("{% macro f(x) %}{% if x > 0 %}{{ x }}{{ f(x - 1) }}{% endif %}{% endmacro %}{{ f(4) }}", "4321")]
    [InlineData("{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] | trim %}{% set messages = messages[1:] %}{% endif %}[{{ sys }}]{{ messages | length }}", "[sys]2")]
    [InlineData("{% for x in undefined_var %}{{ x }}{% else %}none{% endfor %}", "none")]
    [InlineData("{% set x = 'outer' %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 'changed' %}{{ m() }}", "changed")]
    [InlineData("{% macro m(a, b) %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }}|{{ m(1, 2) }}", "1-|1-2")]
    [InlineData("{% for i in range(3) %}{% for j in range(3) %}{% if j > i %}{% break %}{% endif %}{{ i }}{{ j }} {% endfor %}{% endfor %}", "00 10 11 20 21 22 ")]
    [InlineData("{% for x in l %}{{ loop.length }}{{ loop.depth }}{% endfor %}", "313131")]
    [InlineData("{% set ns = namespace() %}{% set ns.a = 1 %}{{ ns.a }}{{ ns.b is defined }}", "1False")]
    [InlineData("{% macro box(title) %}[{{ title }}: {{ caller() }}]{% endmacro %}{% call box('t') %}body {{ n }}{% endcall %}", "[t: body 7]")]
    [InlineData("{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(item) each(l) %}<{{ item }}>{% endcall %}", "<3><1><2>")]
    [InlineData("{% macro outer() %}{% set ns = namespace(f=caller()) %}{{ ns.f | upper }}{% endmacro %}{% call outer() %}inner{% endcall %}", "INNER")]
    [InlineData("{% filter upper %}abc{{ 1 + 1 }}{% endfilter %}", "ABC2")]
    [InlineData("{% filter trim | upper %}  ab  {% endfilter %}|{% filter replace('a', 'b') %}aXa{% endfilter %}", "AB|bXb")]
    [InlineData("{% if false %}{{ x | nope }}{{ 1 is nope }}{% endif %}{{ 1 if true else (x | nope) }}", "1")]
    public void MatchesJinja2(string template, string expected) => Assert.Equal(expected, JinjaHarness.Render(template));

    /// transformers' {% generation %} marks assistant text for training masks; rendering ignores the tags.
    [Fact]
    public void GenerationBlocksRenderTheirBody() =>
        Assert.Equal("<a>yo</a>", JinjaHarness.Render("{% for m in messages if m.role == 'assistant' %}<a>{% generation %}{{ m.content }}{% endgeneration %}</a>{% endfor %}"));
}
