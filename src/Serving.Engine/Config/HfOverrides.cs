using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Engine.Config;

/// --hf-overrides (vLLM's flag): config.json fields that replace the checkpoint's, or a preset's, before the config is
/// read, e.g. {"max_position_embeddings": 32768} to serve a longer context, or a rope_scaling entry with it. Where the
/// override and the config both hold an object under a name, the two are merged field by field; any other value
/// replaces the config's, and null removes it. The result is checked as config.json is, its messages naming the flag.
public sealed class HfOverrides
{
    // what a config error's message names as its file
    const string Source = "config.json with --hf-overrides";

    readonly JsonObject _fields;

    HfOverrides(JsonObject fields) => _fields = fields;

    /// The flag's value: a JSON object. ArgumentException, saying what is wrong, for anything else.
    public static HfOverrides Parse(string json)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"hf-overrides is not valid JSON ({e.Message})", e);
        }
        return node is JsonObject fields ? new HfOverrides(fields)
            : throw new ArgumentException($"hf-overrides must be a JSON object of config.json fields (got {json})");
    }

    /// A preset's config with these fields replaced.
    public ModelConfig ApplyTo(ModelConfig config) => ModelConfigReader.Read(ApplyTo(ModelConfigWriter.ToJson(config)));

    /// config.json's fields with these replaced, read back with this flag named in errors.
    internal JsonFields ApplyTo(JsonObject config)
    {
        var merged = (JsonObject)config.DeepClone();
        Merge(merged, _fields);
        return new JsonFields(merged, Source);
    }

    public override string ToString() => _fields.ToJsonString();

    static void Merge(JsonObject target, JsonObject overrides)
    {
        foreach (var (name, value) in overrides)
        {
            if (value is JsonObject inner && target[name] is JsonObject existing) Merge(existing, inner);
            else target[name] = value?.DeepClone();
        }
    }
}
