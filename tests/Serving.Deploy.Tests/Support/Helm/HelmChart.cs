using System.Text;

namespace Serving.Deploy.Tests.Support.Helm;

/// A Helm chart folder rendered like `helm template RELEASE CHART -f overrides`: helpers (_*.tpl) are
/// parsed first, then each templates/*.yaml is rendered with .Values, .Release and .Chart. Only the template
/// subset in TemplateParser and TemplateFunctions is supported (no helm binary is available here; see
/// deploy/README.md).
internal sealed class HelmChart
{
    readonly string _directory;
    readonly Dictionary<string, object?> _chart;

    public HelmChart(string directory)
    {
        _directory = directory;
        var metadata = ChartData.LoadMap(File.ReadAllText(Path.Combine(directory, "Chart.yaml")));
        // Chart.yaml's keys are exposed capitalised: name -> .Chart.Name, appVersion -> .Chart.AppVersion.
        _chart = metadata.ToDictionary(p => char.ToUpperInvariant(p.Key[0]) + p.Key[1..], p => p.Value);
        Values = ChartData.LoadMap(File.ReadAllText(Path.Combine(directory, "values.yaml")));
    }

    public Dictionary<string, object?> Values { get; }

    /// Rendered manifests by template file name (templates that render to whitespace only are left out).
    public IReadOnlyDictionary<string, string> Render(string releaseName, string? overridesYaml = null)
    {
        var definitions = new Dictionary<string, IReadOnlyList<TemplateNode>>();
        var templates = Directory.GetFiles(Path.Combine(_directory, "templates")).Order(StringComparer.Ordinal).ToList();
        foreach (var helper in templates.Where(f => Path.GetFileName(f).StartsWith('_')))
            TemplateParser.Parse(File.ReadAllText(helper), definitions);
        var parsed = templates.Where(f => f.EndsWith(".yaml", StringComparison.Ordinal))
            .ToDictionary(f => Path.GetFileName(f), f => TemplateParser.Parse(File.ReadAllText(f), definitions));

        var values = overridesYaml == null ? Values : ChartData.Merge(Values, ChartData.LoadMap(overridesYaml));
        var root = new Dictionary<string, object?>
        {
            ["Values"] = values,
            ["Chart"] = _chart,
            ["Release"] = new Dictionary<string, object?>
            {
                ["Name"] = releaseName, ["Namespace"] = "default", ["Service"] = "Helm",
            },
        };
        var evaluator = new TemplateEvaluator(definitions);
        return parsed.Select(p => (p.Key, Text: evaluator.Render(p.Value, root)))
            .Where(p => !string.IsNullOrWhiteSpace(p.Text))
            .ToDictionary(p => p.Key!, p => p.Text);
    }

    /// One multi-document stream, as `helm template` prints it.
    public static string Join(string chartName, IReadOnlyDictionary<string, string> rendered)
    {
        var stream = new StringBuilder();
        foreach (var (file, text) in rendered)
            stream.Append("---\n# Source: ").Append(chartName).Append("/templates/").Append(file).Append('\n')
                .Append(text.Trim('\n')).Append('\n');
        return stream.ToString();
    }
}
