using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Engine.Config;

/// Typed reads of one JSON object of a config file; every error names the file and the field.
internal sealed class JsonFields(JsonObject json, string file, string prefix = "")
{
    public string File => file;

    /// The object read (what HfOverrides merges into).
    public JsonObject Json => json;

    public static JsonFields Load(string path)
    {
        var name = Path.GetFileName(path);
        if (!System.IO.File.Exists(path)) throw new ModelConfigException($"{name} not found at {path}");
        try
        {
            var node = JsonNode.Parse(System.IO.File.ReadAllText(path));
            return node is JsonObject obj ? new JsonFields(obj, name)
                : throw new ModelConfigException($"{name}: the top level is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new ModelConfigException($"{name}: invalid JSON ({e.Message})", e);
        }
    }

    public string Name(string field) => prefix + field;

    public bool Has(string field) => json[field] is not null;

    public JsonFields? Object(string field) => json[field] switch
    {
        null => null,
        JsonObject obj => new JsonFields(obj, file, Name(field) + "."),
        var other => throw Invalid(field, other, "an object"),
    };

    public string? String(string field) => json[field] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        var other => throw Invalid(field, other, "a string"),
    };

    public int? Int(string field) => json[field] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out int i) => i,
        JsonValue v when v.TryGetValue(out double d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue => (int)d,
        var other => throw Invalid(field, other, "an integer"),
    };

    public double? Double(string field) => json[field] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out double d) => d,
        JsonValue v when v.TryGetValue(out int i) => i,   // an integer node made in code (a family's defaults)
        var other => throw Invalid(field, other, "a number"),
    };

    public bool? Bool(string field) => json[field] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out bool b) => b,
        var other => throw Invalid(field, other, "true or false"),
    };

    public int RequiredInt(string field) =>
        Int(field) ?? throw new ModelConfigException($"{file}: missing required field '{Name(field)}'");

    public int PositiveInt(string field)
    {
        var value = RequiredInt(field);
        return value > 0 ? value : throw Invalid(field, json[field], "a positive integer");
    }

    public IReadOnlyList<string> StringList(string field) => json[field] switch
    {
        null => [],
        JsonArray items => items.Select(item => item is JsonValue v && v.TryGetValue(out string? s) ? s
            : throw Invalid(field, json[field], "a list of strings")).ToArray(),
        var other => throw Invalid(field, other, "a list of strings"),
    };

    public IReadOnlyList<double> DoubleList(string field) => json[field] switch
    {
        null => [],
        JsonArray items => items.Select(item => item is JsonValue v && v.TryGetValue(out double d) ? d
            : throw Invalid(field, json[field], "a list of numbers")).ToArray(),
        var other => throw Invalid(field, other, "a list of numbers"),
    };

    /// An int or a list of ints (eos_token_id); absent or null gives an empty list.
    public IReadOnlyList<int> IntOrList(string field) => json[field] switch
    {
        null => [],
        JsonArray items => items.Select(item => item is JsonValue v && v.TryGetValue(out int i) ? i
            : throw Invalid(field, json[field], "an integer or a list of integers")).ToArray(),
        _ => [RequiredInt(field)],
    };

    ModelConfigException Invalid(string field, JsonNode? value, string expected) =>
        new($"{file}: field '{Name(field)}' must be {expected}, got {value?.ToJsonString() ?? "null"}");
}
