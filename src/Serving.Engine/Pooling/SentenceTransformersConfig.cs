using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Engine.Pooling;

/// A sentence-transformers checkpoint says how it pools in its own files, and vLLM follows them: modules.json lists
/// the modules (a sentence_transformers.models.Pooling module, whose folder's config.json sets pooling_mode_*; a
/// Normalize module scales to unit length). Read here so that such a model embeds as sentence-transformers does.
internal static class SentenceTransformersConfig
{
    const string PoolingModule = "sentence_transformers.models.Pooling";
    const string NormalizeModule = "sentence_transformers.models.Normalize";

    /// The pooler the folder's modules.json describes; null when it has none (or no pooling module).
    public static PoolerConfig? Read(string directory)
    {
        var modulesPath = Path.Combine(directory, "modules.json");
        if (!File.Exists(modulesPath)) return null;
        try
        {
            var modules = JsonNode.Parse(File.ReadAllText(modulesPath)) as JsonArray
                ?? throw new ModelLoadException($"{modulesPath}: a JSON array of modules is expected");
            var types = modules.OfType<JsonObject>().Select(m => (Type: m["type"]?.GetValue<string>(), Path: m["path"]?.GetValue<string>())).ToList();
            var pooling = types.FirstOrDefault(m => m.Type == PoolingModule);
            if (pooling.Type is null) return null;
            var poolingPath = Path.Combine(directory, pooling.Path ?? "", "config.json");
            if (!File.Exists(poolingPath)) return null;
            var fields = JsonNode.Parse(File.ReadAllText(poolingPath)) as JsonObject
                ?? throw new ModelLoadException($"{poolingPath}: a JSON object is expected");
            return new PoolerConfig(PoolingTypeOf(fields, poolingPath), types.Any(m => m.Type == NormalizeModule));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new ModelLoadException($"{modulesPath} or its pooling module's config.json cannot be read ({e.Message})", e);
        }
    }

    static PoolingType PoolingTypeOf(JsonObject fields, string path)
    {
        bool On(string mode) => fields[mode]?.GetValue<bool>() == true;
        if (On("pooling_mode_lasttoken")) return PoolingType.Last;
        if (On("pooling_mode_mean_tokens")) return PoolingType.Mean;
        if (On("pooling_mode_cls_token")) return PoolingType.Cls;
        var on = fields.Where(f => f.Key.StartsWith("pooling_mode_") && f.Value is JsonValue v && v.TryGetValue(out bool b) && b).Select(f => f.Key);
        throw new ModelLoadException($"{path}: pooling mode {string.Join(", ", on.DefaultIfEmpty("(none)"))} is not supported " +
            "(pooling_mode_lasttoken, pooling_mode_mean_tokens, pooling_mode_cls_token)");
    }
}
