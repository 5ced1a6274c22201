using System.Globalization;
using YamlDotNet.RepresentationModel;
using YamlDotNet.Serialization;

namespace Serving.Deploy.Tests.Support.Helm;

/// YAML to the plain data templates walk (maps, lists, typed scalars: plain scalars that read as integers,
/// floats, booleans or null under YAML 1.2's core schema get that type; quoted scalars stay strings).
internal static class ChartData
{
    public static Dictionary<string, object?> LoadMap(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return stream.Documents.Count == 0 ? []
            : Convert(stream.Documents[0].RootNode) as Dictionary<string, object?> ?? throw new FormatException("not a map");
    }

    public static object? Convert(YamlNode node) => node switch
    {
        YamlMappingNode map => map.Children.ToDictionary(p => ((YamlScalarNode)p.Key).Value!, p => Convert(p.Value)),
        YamlSequenceNode list => list.Children.Select(Convert).ToList(),
        YamlScalarNode scalar => Scalar(scalar),
        _ => throw new FormatException($"unsupported YAML node {node.NodeType}"),
    };

    static object? Scalar(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? "";
        if (scalar.Style != YamlDotNet.Core.ScalarStyle.Plain) return text;
        if (text is "" or "~" or "null") return null;
        if (text is "true" or "false") return text == "true";
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer)) return integer;
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var real)) return real;
        return text;
    }

    /// Later maps win key by key, recursively (how Helm merges --set / -f values over values.yaml).
    public static Dictionary<string, object?> Merge(Dictionary<string, object?> baseMap, Dictionary<string, object?> overrides)
    {
        var merged = new Dictionary<string, object?>(baseMap);
        foreach (var (key, value) in overrides)
            merged[key] = value is Dictionary<string, object?> child && merged.GetValueOrDefault(key) is Dictionary<string, object?> under
                ? Merge(under, child) : value;
        return merged;
    }

    static readonly ISerializer Serializer = new SerializerBuilder().WithQuotingNecessaryStrings().Build();

    public static string ToYaml(object? value) => Serializer.Serialize(value);
}
