using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Engine.Pooling;

/// A sentence-transformers checkpoint says how it pools in its own files, and vLLM follows them: modules.json lists
/// the modules (a sentence_transformers.models.Pooling module, whose folder's config.json sets pooling_mode_*; Dense
/// projections after it, DenseModule; a Normalize module last scales to unit length). Read here so that such a model
/// embeds as sentence-transformers does.
internal static class SentenceTransformersConfig
{
    const string TransformerModule = "sentence_transformers.models.Transformer";
    const string PoolingModule = "sentence_transformers.models.Pooling";
    const string DenseModuleType = "sentence_transformers.models.Dense";
    const string NormalizeModule = "sentence_transformers.models.Normalize";
    static readonly string[] Modes = ["pooling_mode_lasttoken", "pooling_mode_mean_tokens", "pooling_mode_cls_token"];

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
            // a module we would skip (a LayerNorm, a word-weights layer) changes the vector: refused, not ignored
            if (types.FirstOrDefault(m => m.Type is not (TransformerModule or PoolingModule or DenseModuleType or NormalizeModule)) is { Type: var other } && other is not null)
                throw new ModelLoadException($"{modulesPath} lists a {other} module, which this server does not run " +
                    "(it serves Transformer, Pooling, Dense and Normalize modules); its embeddings would differ from sentence-transformers'");
            var pooling = types.FindIndex(m => m.Type == PoolingModule);
            if (pooling < 0) return null;
            // the order sentence-transformers runs them in: the Dense projections after pooling, a Normalize last
            var normalize = types.FindIndex(m => m.Type == NormalizeModule);
            if (types.FindIndex(m => m.Type == DenseModuleType) is var dense and >= 0 && dense < pooling
                || normalize >= 0 && normalize != types.Count - 1)
                throw new ModelLoadException($"{modulesPath}: the modules run Pooling, then any Dense, then Normalize last " +
                    $"(listed: {string.Join(", ", types.Select(m => m.Type?.Split('.')[^1]))})");
            var poolingPath = Path.Combine(directory, types[pooling].Path ?? "", "config.json");
            // without it the listed modules (a Dense projection's length, a Normalize) would be dropped unseen
            if (!File.Exists(poolingPath)) throw new ModelLoadException($"{modulesPath} lists a Pooling module, but {poolingPath} is missing");
            var fields = JsonNode.Parse(File.ReadAllText(poolingPath)) as JsonObject
                ?? throw new ModelLoadException($"{poolingPath}: a JSON object is expected");
            var projections = types.Where(m => m.Type == DenseModuleType).Select(m => DenseModule.Read(Path.Combine(directory, m.Path ?? ""))).ToList();
            for (var i = 1; i < projections.Count; i++)
                if (projections[i].InFeatures != projections[i - 1].OutFeatures)
                    throw new ModelLoadException($"{projections[i].Folder}: in_features {projections[i].InFeatures} does not take " +
                        $"the {projections[i - 1].OutFeatures} features of the Dense module before it");
            return new PoolerConfig(PoolingTypeOf(fields, poolingPath), normalize >= 0) { Dense = projections };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new ModelLoadException($"{modulesPath} or its pooling module's config.json cannot be read ({e.Message})", e);
        }
    }

    /// Exactly one of the modes this server pools by (sentence-transformers concatenates several; others, such as
    /// max or weighted mean, are not run).
    static PoolingType PoolingTypeOf(JsonObject fields, string path)
    {
        var on = fields.Where(f => f.Key.StartsWith("pooling_mode_", StringComparison.Ordinal) && f.Value is JsonValue v && v.TryGetValue(out bool b) && b)
            .Select(f => f.Key).ToList();
        if (on.Count != 1 || !Modes.Contains(on[0]))
            throw new ModelLoadException($"{path}: pooling mode {string.Join(" + ", on.DefaultIfEmpty("(none)"))} is not supported " +
                $"(exactly one of {string.Join(", ", Modes)}; --pooler-config cannot replace a checkpoint's own modules)");
        return on[0] switch
        {
            "pooling_mode_lasttoken" => PoolingType.Last,
            "pooling_mode_mean_tokens" => PoolingType.Mean,
            _ => PoolingType.Cls,
        };
    }
}
