using Serving.Deploy.Tests.Support.Helm;
using YamlDotNet.RepresentationModel;

namespace Serving.Deploy.Tests.Support;

/// YAML documents as plain data (maps, lists, typed scalars) and a path walker over them.
internal static class Yaml
{
    public static List<Dictionary<string, object?>> Documents(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return stream.Documents
            .Select(d => ChartData.Convert(d.RootNode))
            .OfType<Dictionary<string, object?>>()
            .ToList();
    }

    public static List<Dictionary<string, object?>> DocumentsIn(string file) => Documents(File.ReadAllText(file));

    /// The node at path (string keys, int indices); null when any step is missing.
    public static object? At(object? node, params object[] path)
    {
        foreach (var step in path)
            node = (node, step) switch
            {
                (Dictionary<string, object?> map, string key) => map.GetValueOrDefault(key),
                (List<object?> list, int index) => index < list.Count ? list[index] : null,
                _ => null,
            };
        return node;
    }

    public static Dictionary<string, object?> MapAt(object? node, params object[] path) =>
        At(node, path) as Dictionary<string, object?> ?? [];

    public static List<object?> ListAt(object? node, params object[] path) => At(node, path) as List<object?> ?? [];

    public static string? StringAt(object? node, params object[] path) => At(node, path) is { } v ? TemplateEvaluator.Print(v) : null;

    /// Every node in the tree with its parent key, depth first.
    public static IEnumerable<(string? Key, object? Node)> Walk(object? node, string? key = null)
    {
        yield return (key, node);
        var children = node switch
        {
            Dictionary<string, object?> map => map.Select(p => (Key: (string?)p.Key, Node: p.Value)),
            List<object?> list => list.Select(v => (Key: key, Node: v)),
            _ => [],
        };
        foreach (var (childKey, child) in children)
            foreach (var descendant in Walk(child, childKey))
                yield return descendant;
    }
}
