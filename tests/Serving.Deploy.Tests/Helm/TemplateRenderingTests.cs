using Serving.Deploy.Tests.Support.Helm;

namespace Serving.Deploy.Tests.Helm;

/// The Go-template subset the chart is rendered with, checked against what Helm prints for the same input.
public sealed class TemplateRenderingTests
{
    static string Render(string template, string valuesYaml = "{}")
    {
        var definitions = new Dictionary<string, IReadOnlyList<TemplateNode>>();
        var nodes = TemplateParser.Parse(template, definitions);
        var root = new Dictionary<string, object?> { ["Values"] = ChartData.LoadMap(valuesYaml) };
        return new TemplateEvaluator(definitions).Render(nodes, root);
    }

    [Fact]
    public void TrimMarkersRemoveWhitespaceOnTheirSideOnly()
    {
        Assert.Equal("a:\n  b", Render("a:\n  {{- \"\" }}\n  b"));
        Assert.Equal("x1y", Render("x {{- 1 -}} \n y"));
        Assert.Equal("x 1 y", Render("x {{ 1 }} y"));
    }

    [Fact]
    public void RangeOverAMapVisitsKeysInSortedOrderWithKeyAndValueVariables()
    {
        var text = Render("{{- range $k, $v := .Values.flags }}\n- --{{ $k }}={{ $v }}{{- end }}",
            "flags: {zeta: 1, alpha: true, mid: 0.9}");
        Assert.Equal("\n- --alpha=true\n- --mid=0.9\n- --zeta=1", text);
    }

    [Fact]
    public void IfElseIfElseFollowsGoTruthiness()
    {
        const string template = "{{ if .Values.a }}A{{ else if .Values.b }}B{{ else }}C{{ end }}";
        Assert.Equal("A", Render(template, "{a: 1, b: 1}"));
        Assert.Equal("B", Render(template, "{a: 0, b: x}"));
        Assert.Equal("C", Render(template, "{a: '', b: {}}"));
    }

    [Fact]
    public void WithChangesDotAndSkipsEmptyValues()
    {
        Assert.Equal("[k: v]", Render("[{{ with .Values.m }}{{ toYaml . }}{{ end }}]", "m: {k: v}"));
        Assert.Equal("[]", Render("[{{ with .Values.m }}x{{ end }}]", "m: {}"));
    }

    [Fact]
    public void IncludeWithNindentIndentsEveryLineOfADefinition()
    {
        const string template = "{{- define \"labels\" -}}\na: {{ .Values.a }}\nb: x\n{{- end -}}\nmeta:\n  {{- include \"labels\" . | nindent 2 }}";
        Assert.Equal("meta:\n  a: 1\n  b: x", Render(template, "a: 1"));
    }

    [Fact]
    public void QuoteToYamlAddDefaultTruncAndPrintfBehaveLikeSprig()
    {
        Assert.Equal("\"8000\"", Render("{{ .Values.p | quote }}", "p: 8000"));
        Assert.Equal("\"a\\\"b\"", Render("{{ .Values.s | quote }}", "s: 'a\"b'"));
        Assert.Equal("80", Render("{{ add .Values.a .Values.b 15 }}", "{a: 5, b: 60}"));
        Assert.Equal("d", Render("{{ .Values.s | default \"d\" }}", "s: ''"));
        Assert.Equal("abc", Render("{{ .Values.s | trunc 3 | trimSuffix \"-\" }}", "s: abcdef"));
        Assert.Equal("x-1", Render("{{ printf \"%s-%d\" .Values.s .Values.n }}", "{s: x, n: 1}"));
        // Strings that YAML would read as another type stay quoted.
        Assert.Equal("a: 1\nb: \"true\"\nc:\n- x", Render("{{ toYaml .Values.m }}", "m: {a: 1, b: 'true', c: [x]}"));
    }

    [Fact]
    public void MissingValuesAndUnknownFunctionsFailInsteadOfRenderingEmpty()
    {
        Assert.Throws<KeyNotFoundException>(() => Render("{{ .Values.missing }}"));
        Assert.Throws<NotSupportedException>(() => Render("{{ lookup \"v1\" \"Secret\" \"ns\" \"x\" }}"));
        Assert.Throws<FormatException>(() => Render("{{ if .Values }}never closed"));
    }
}
