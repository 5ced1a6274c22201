using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Engine.Templates.Jinja;

/// Converts request JSON into sandbox values the way json.loads does: integers stay int, numbers with a
/// fraction or exponent become float, objects keep their key order.
internal static class JsonValues
{
    const int MaxDepth = 64;

    public static JinjaValue From(JsonNode? node, int depth = 0)
    {
        if (depth > MaxDepth) throw TemplateException.Runtime($"template input nested deeper than {MaxDepth} levels");
        return node switch
        {
            null => NoneValue.Instance,
            JsonObject obj => FromObject(obj, depth),
            JsonArray array => new ListValue(array.Select(item => From(item, depth + 1)).ToList()),
            JsonValue value => FromScalar(value),
            _ => throw TemplateException.Runtime($"unsupported JSON node {node.GetType().Name}"),
        };
    }

    static DictValue FromObject(JsonObject obj, int depth)
    {
        var dict = new DictValue();
        foreach (var (key, value) in obj) dict.Set(key, From(value, depth + 1));
        return dict;
    }

    static JinjaValue FromScalar(JsonValue value) => value.GetValueKind() switch
    {
        JsonValueKind.String => new StringValue(value.GetValue<string>()),
        JsonValueKind.True => BoolValue.True,
        JsonValueKind.False => BoolValue.False,
        JsonValueKind.Null => NoneValue.Instance,
        JsonValueKind.Number => FromNumber(value.ToJsonString()),
        var kind => throw TemplateException.Runtime($"unsupported JSON value {kind}"),
    };

    static JinjaValue FromNumber(string raw)
    {
        var isInteger = raw.IndexOfAny(['.', 'e', 'E']) < 0;
        if (isInteger && long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
            return new IntValue(integer);
        return new FloatValue(double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture));
    }
}
