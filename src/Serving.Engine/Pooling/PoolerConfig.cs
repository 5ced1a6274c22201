using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Engine.Pooling;

/// How the pooling runner turns a prompt into an embedding unless a request says otherwise: vLLM's PoolerConfig.
/// The default for embeddings is LAST pooling, normalized; a sentence-transformers checkpoint's own modules
/// (SentenceTransformersConfig) replace it, and --pooler-config replaces either, field by field.
public sealed record PoolerConfig(PoolingType PoolingType = PoolingType.Last, bool Normalize = true, int? Dimensions = null)
{
    public static PoolerConfig Default { get; } = new();

    /// The checkpoint's sentence-transformers Dense modules, run in order on the pooled vector before it is cut and
    /// normalized (EmbeddingGemma's two); empty: none.
    public IReadOnlyList<DenseModule> Dense { get; init; } = [];

    /// The pooled vector's length: the last Dense module's out_features, else the model's hidden size.
    public int EmbeddingSize(int hiddenSize) => Dense.Count > 0 ? Dense[^1].OutFeatures : hiddenSize;

    // equal with equal modules, whichever list holds them
    public bool Equals(PoolerConfig? other) => other is not null && PoolingType == other.PoolingType && Normalize == other.Normalize
        && Dimensions == other.Dimensions && Dense.SequenceEqual(other.Dense);

    public override int GetHashCode() => HashCode.Combine(PoolingType, Normalize, Dimensions, Dense.Count);

    /// A classifier's default (vLLM's for classify): LAST pooling of the head's logits, not normalized.
    public static PoolerConfig Classifier { get; } = new(PoolingType.Last, Normalize: false);

    /// The model folder's sentence-transformers modules when it has them (else the default: Classifier for a sequence
    /// classifier), then the flag's fields.
    public static PoolerConfig Resolve(string modelDirectory, PoolerConfigOverrides? overrides, bool classifier = false)
    {
        var fallback = classifier ? Classifier : Default;
        var config = !classifier && Directory.Exists(modelDirectory) ? SentenceTransformersConfig.Read(modelDirectory) ?? fallback : fallback;
        return overrides?.ApplyTo(config) ?? config;
    }

    /// The parameters of a request that sets nothing itself.
    public PoolingParams Params(bool? normalize = null, int? dimensions = null) =>
        new(PoolingType, normalize ?? Normalize, dimensions ?? Dimensions);

    public override string ToString() =>
        $"pooling_type={PoolingType.Name()}, normalize={Normalize.ToString().ToLowerInvariant()}" + (Dimensions is { } d ? $", dimensions={d}" : "")
        + (Dense.Count > 0 ? $", dense={Dense[0].InFeatures}->{string.Join("->", Dense.Select(m => m.OutFeatures))}" : "");
}

/// --pooler-config (vLLM's flag): a JSON object of the PoolerConfig fields to set, e.g. {"pooling_type": "MEAN",
/// "normalize": false}. ArgumentException, naming the field, for anything else.
public sealed record PoolerConfigOverrides(PoolingType? PoolingType, bool? Normalize, int? Dimensions)
{
    static readonly string[] Fields = ["pooling_type", "normalize", "dimensions"];

    public static PoolerConfigOverrides Parse(string json)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"pooler-config is not valid JSON ({e.Message})", e);
        }
        if (node is not JsonObject fields)
            throw new ArgumentException($"pooler-config must be a JSON object such as {{\"pooling_type\": \"MEAN\", \"normalize\": false}} (got {json})");
        foreach (var (name, _) in fields)
            if (!Fields.Contains(name))
                throw new ArgumentException($"pooler-config field '{name}' is not supported (supported: {string.Join(", ", Fields)})");
        try
        {
            var type = fields["pooling_type"] is { } t ? PoolingTypes.Parse(t.GetValue<string>()) : (PoolingType?)null;
            var normalize = fields["normalize"]?.GetValue<bool>();
            var dimensions = fields["dimensions"]?.GetValue<int>();
            if (dimensions < 1) throw new ArgumentException($"pooler-config dimensions must be at least 1 (got {dimensions})");
            return new PoolerConfigOverrides(type, normalize, dimensions);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new ArgumentException($"pooler-config: pooling_type must be a string, normalize a boolean and dimensions an integer ({e.Message})", e);
        }
    }

    public PoolerConfig ApplyTo(PoolerConfig config) =>
        config with { PoolingType = PoolingType ?? config.PoolingType, Normalize = Normalize ?? config.Normalize, Dimensions = Dimensions ?? config.Dimensions };
}
