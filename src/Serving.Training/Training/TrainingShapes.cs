using Serving.Engine.Config;

namespace Serving.Training.Training;

/// Model shapes to train from scratch: Llama-style decoders (RMSNorm, SwiGLU, rotary) with tied embeddings, the
/// vocabulary and special ids taken from the corpus's tokenizer. All have 8 query heads, so GQA-4, GQA-2 and MQA
/// conversions exist for each.
internal static class TrainingShapes
{
    public static IReadOnlyList<(string Name, string Description)> All { get; } =
    [
        ("tiny", "2 layers, hidden 64, 8 heads of 8 (tests)"),
        ("small", "4 layers, hidden 256, 8 heads of 32, SwiGLU 704 (~3M + embeddings; CPU runs)"),
        ("base", "8 layers, hidden 384, 8 heads of 48, SwiGLU 1024 (14.2M + 3.1M embeddings at vocabulary 8192; the GQA experiment)"),
    ];

    /// The config of a shape with numKVHeads KV heads (null: MHA), a vocabulary and a context length.
    public static ModelConfig Get(string name, int vocabSize, int maxLength, int? numKVHeads, int? bosTokenId, int eosTokenId)
    {
        var (layers, hidden, headDim, ffn) = name.ToLowerInvariant() switch
        {
            "tiny" => (2, 64, 8, 176),
            "small" => (4, 256, 32, 704),
            "base" => (8, 384, 48, 1024),
            _ => throw new ArgumentException($"unknown shape '{name}' (known: {string.Join(", ", All.Select(s => s.Name))})"),
        };
        const int numHeads = 8;
        return new ModelConfig
        {
            ModelType = "llama",
            Architectures = ["LlamaForCausalLM"],
            HiddenSize = hidden,
            IntermediateSize = ffn,
            NumHiddenLayers = layers,
            NumAttentionHeads = numHeads,
            NumKeyValueHeads = numKVHeads ?? numHeads,
            HeadDim = headDim,
            VocabSize = vocabSize,
            RmsNormEps = 1e-5,
            Rope = new RopeConfig { Theta = 10000 },
            MaxPositionEmbeddings = maxLength,
            TieWordEmbeddings = true,
            Dtype = "float32",
            BosTokenId = bosTokenId,
            EosTokenIds = [eosTokenId],
        };
    }
}
