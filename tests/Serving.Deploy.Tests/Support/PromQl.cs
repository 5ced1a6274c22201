using System.Text.RegularExpressions;

namespace Serving.Deploy.Tests.Support;

/// The metric names a PromQL expression (or a Prometheus-adapter query template) reads.
internal static partial class PromQl
{
    /// Functions, aggregations and keywords the deployment files use; any other identifier outside label
    /// matchers, groupings and ranges is a metric name.
    static readonly HashSet<string> Keywords =
    [
        "sum", "avg", "min", "max", "count", "rate", "irate", "increase", "histogram_quantile", "clamp_min",
        "avg_over_time", "max_over_time", "min_over_time", "label_values", "by", "without", "on", "ignoring",
        "bool", "and", "or", "unless", "offset",
    ];

    public static IReadOnlyList<string> MetricNames(string expression)
    {
        var stripped = LabelValues().Replace(expression, "$1"); // Grafana's label_values(metric, label)
        stripped = Strings().Replace(stripped, " ");
        stripped = AdapterTemplate().Replace(stripped, " ");   // <<.Series>>, <<.LabelMatchers>>, ...
        stripped = LabelMatchers().Replace(stripped, " ");     // {instance=~"$instance"}
        stripped = Ranges().Replace(stripped, " ");            // [$__rate_interval], [1m]
        stripped = Groupings().Replace(stripped, " ");         // by (le), without (pod)
        return Identifier().Matches(stripped).Select(m => m.Value)
            .Where(name => !Keywords.Contains(name) && !name.StartsWith("$", StringComparison.Ordinal))
            .Distinct().ToList();
    }

    [GeneratedRegex(@"label_values\(\s*([^,()]+?)\s*,\s*\w+\s*\)")] private static partial Regex LabelValues();
    [GeneratedRegex("\"[^\"]*\"|'[^']*'")] private static partial Regex Strings();
    [GeneratedRegex("<<[^>]*>>")] private static partial Regex AdapterTemplate();
    [GeneratedRegex(@"\{[^}]*\}")] private static partial Regex LabelMatchers();
    [GeneratedRegex(@"\[[^\]]*\]")] private static partial Regex Ranges();
    [GeneratedRegex(@"\b(by|without|on|ignoring)\s*\([^)]*\)")] private static partial Regex Groupings();
    [GeneratedRegex(@"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")]
    private static partial Regex Identifier();
}
