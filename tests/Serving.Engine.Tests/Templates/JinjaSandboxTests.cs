using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Serving.Engine.Templates;

namespace Serving.Engine.Tests.Templates;

/// The sandbox: limits stop runaway templates, errors carry lines, raise_exception keeps its message,
/// templates see only JSON-like values, and the transformers render variables behave as there.
public sealed class JinjaSandboxTests
{
    static string Render(string source, JsonArray? messages = null, JsonObject? extra = null, string? bos = null) =>
        new ChatTemplate(source).Render(messages ?? [], addGenerationPrompt: true, bos, eosToken: "</s>", extra);

    [Fact]
    public void RaiseExceptionSurfacesTheTemplatesMessage()
    {
        const string source = "{% if messages[0].role != 'user' %}{{ raise_exception('Roles must alternate user/assistant/...') }}{% endif %}";
        var error = Assert.Throws<TemplateException>(() => Render(source, [new JsonObject { ["role"] = "assistant", ["content"] = "x" }]));
        Assert.True(error.RaisedByTemplate);
        Assert.Equal("Roles must alternate user/assistant/...", error.Message);
    }

    [Theory]
    [InlineData("{% for i in range(1000000000) %}x{% endfor %}")]                                          // one huge range
    [InlineData("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")]       // 10^10 iterations
    [InlineData("{% for i in range(1000000) %}{{ 'xxxxxxxx' }}{% endfor %}")]                                // 8M characters of output
    [InlineData("{{ 'x' * 1000000000 }}")]                                                                     // one huge string
    [InlineData("{{ [0] * 1000000000 }}")]                                                                     // one huge list
    [InlineData("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}")]
    [InlineData("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")]                                // unbounded recursion
    [InlineData("{{ 'ab' | replace('', 'x' * 3000000) }}")]                                                   // replace blow-up
    [InlineData("{{ (-9223372036854775807 - 1) | abs }}")]                                                    // int64 overflow
    public void RunawayTemplatesAreStopped(string source)
    {
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<TemplateException>(() => Render(source));
        Assert.False(error.RaisedByTemplate);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
    }

    [Fact]
    public void DeeplyNestedExpressionsAreRejectedWhenParsing()
    {
        var source = "{{ " + new string('(', 5000) + "1" + new string(')', 5000) + " }}";
        Assert.Throws<TemplateException>(() => new ChatTemplate(source));
    }

    [Theory]
    [InlineData("line 1\n{% if true %}\n{{ 1 + }}\n{% endif %}", 3)]
    [InlineData("a\nb\n{% for x in y %}\nno end", 4)]
    [InlineData("{{ x | no_such_filter }}", 1)]
    [InlineData("{% if x %}\n{% for i in l %}{{ i | no_such_filter }}{% endfor %}{% endif %}", 2)] // a loop's frame is not soft
    [InlineData("\n{% filter no_such_filter %}x{% endfilter %}", 2)]
    [InlineData("\n{{ x is no_such_test }}", 2)]
    [InlineData("\n\n{% include 'other.jinja' %}", 3)]
    [InlineData("{{ 'unterminated }}", 1)]
    [InlineData("a\n\n  {%- if true %}\n{% for %}{% endif %}", 4)] // lines stripped by "-" still count
    public void SyntaxErrorsAreReportedWithTheirLine(string source, int line)
    {
        var error = Assert.Throws<TemplateException>(() => new ChatTemplate(source));
        Assert.Equal(line, error.Line);
        Assert.Contains($"line {line}", error.Message);
    }

    [Fact]
    public void AnUnknownFilterInsideAnIfFailsWhenItRuns()
    {
        var error = Assert.Throws<TemplateException>(() => Render("{% if true %}\n{{ 1 | no_such_filter }}{% endif %}", []));
        Assert.Equal(2, error.Line);
        Assert.Contains("no filter named 'no_such_filter'", error.Message);
    }

    [Fact]
    public void UnhashableDictKeysAreRefused() =>
        Assert.Contains("unhashable type: 'list'", Assert.Throws<TemplateException>(() => Render("{{ {[1]: 2} }}", [])).Message);

    [Fact]
    public void RuntimeErrorsAreReportedWithTheirLine()
    {
        var error = Assert.Throws<TemplateException>(() => Render("a\n{% for m in messages %}\n{{ m.missing.deeper }}\n{% endfor %}",
            [new JsonObject { ["role"] = "user" }]));
        Assert.Equal(3, error.Line);
        Assert.Contains("'missing' is undefined", error.Message);
    }

    [Fact]
    public void TemplatesCannotReachDotNetMembers()
    {
        Assert.Equal("||", Render("{{ messages.Count }}|{{ ''.__class__ }}|{{ 'abc'.Length }}"));
        Assert.Throws<TemplateException>(() => Render("{{ messages.GetType() }}"));
        Assert.Throws<TemplateException>(() => Render("{{ 'x'.GetHashCode() }}"));
    }

    [Fact]
    public void ContentPartsArePassedThroughForTheTemplateToHandle()
    {
        var messages = (JsonArray)JsonNode.Parse("""
            [{"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]},
             {"role": "assistant", "content": "Hi"}]
            """)!;
        const string source = "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}"
            + "{% for p in m.content if p.type == 'text' %}{{ p.text }}{% endfor %}{% endif %};{% endfor %}";
        Assert.Equal("Hello there;Hi;", Render(source, messages));
    }

    [Fact]
    public void RenderVariablesMatchTransformers()
    {
        const string source = "{{ bos_token is defined }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools is none }}|{{ documents is none }}";
        Assert.Equal("False|</s>|True|True|True", Render(source));
        Assert.Equal("<s>", Render("{{ bos_token }}", bos: "<s>"));
        Assert.Equal("get_weather", Render("{{ tools[0].name }}", extra: new JsonObject { ["tools"] = new JsonArray(new JsonObject { ["name"] = "get_weather" }) }));
    }

    [Fact]
    public void StrftimeNowFormatsTheCurrentLocalTime()
    {
        var before = DateTime.Now;
        var rendered = Render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H%%') }}");
        var after = DateTime.Now;
        string Expected(DateTime t) => t.ToString("dd MMM yyyy", CultureInfo.InvariantCulture) + "|" + t.ToString("yyyy-MM-dd HH", CultureInfo.InvariantCulture) + "%";
        Assert.Contains(rendered, new[] { Expected(before), Expected(after) });
    }

    [Fact]
    public void OneParsedTemplateRendersConcurrently()
    {
        var template = new ChatTemplate("{% for m in messages %}{{ loop.index }}:{{ m.content }};{% endfor %}");
        var results = Enumerable.Range(0, 32).AsParallel().Select(i =>
            template.Render([new JsonObject { ["role"] = "user", ["content"] = $"m{i}" }], false, null, null)).ToList();
        Assert.Equal(Enumerable.Range(0, 32).Select(i => $"1:m{i};"), results);
    }
}
