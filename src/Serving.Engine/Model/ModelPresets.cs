namespace Serving.Engine.Model;

/// Llama 3 rope scaling ("rope_type": "llama3" in config.json).
public sealed record Llama3RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings);

/// The shape of a Llama-family decoder, enough to build random weights of a real size without a checkpoint
/// (issue 6: benchmark and GPU runs of the 8B shape with no files). Selected by name in the server
/// (`--model llama3-8b`) and the benchmark.
public sealed record ModelPreset(
    string Name,
    int NumLayers,
    int HiddenSize,
    int IntermediateSize,
    int NumHeads,
    int NumKVHeads,
    int HeadDim,
    int VocabSize,
    double RopeTheta,
    Llama3RopeScaling? RopeScaling,
    int MaxPositionEmbeddings,
    double RmsNormEps = 1e-5,
    bool TieWordEmbeddings = false)
{
    public int NumQueriesPerKV => NumHeads / NumKVHeads;

    /// K and V bytes one token occupies in the cache across all layers.
    public long KVBytesPerToken(int elementSize) => 2L * NumLayers * NumKVHeads * HeadDim * elementSize;
}

/// Named shapes. The llama3-8b trio differs only in KV heads: GQA-8 (the real model), its MHA twin and an
/// MQA variant, so their step times isolate the cost of reading the KV cache.
public static class ModelPresets
{
    private static readonly Llama3RopeScaling Llama3Scaling = new(8.0, 1.0, 4.0, 8192);

    public static IReadOnlyList<ModelPreset> All { get; } =
    [
        Llama3_8B("llama3-8b", numKVHeads: 8),
        Llama3_8B("llama3-8b-mha", numKVHeads: 32),
        Llama3_8B("llama3-8b-mqa", numKVHeads: 1),
        new("tiny-gqa", NumLayers: 2, HiddenSize: 256, IntermediateSize: 512, NumHeads: 8, NumKVHeads: 2, HeadDim: 32,
            VocabSize: 1024, RopeTheta: 10000, RopeScaling: null, MaxPositionEmbeddings: 4096),
        new("tiny-mha", NumLayers: 2, HiddenSize: 256, IntermediateSize: 512, NumHeads: 4, NumKVHeads: 4, HeadDim: 64,
            VocabSize: 1024, RopeTheta: 10000, RopeScaling: null, MaxPositionEmbeddings: 4096),
    ];

    public static bool TryGet(string name, out ModelPreset preset)
    {
        preset = All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))!;
        return preset is not null;
    }

    public static ModelPreset Get(string name) =>
        TryGet(name, out var preset)
            ? preset
            : throw new ArgumentException($"unknown model preset '{name}' (known: {string.Join(", ", All.Select(p => p.Name))})", nameof(name));

    private static ModelPreset Llama3_8B(string name, int numKVHeads) =>
        new(name, NumLayers: 32, HiddenSize: 4096, IntermediateSize: 14336, NumHeads: 32, NumKVHeads: numKVHeads, HeadDim: 128,
            VocabSize: 128256, RopeTheta: 500000, RopeScaling: Llama3Scaling, MaxPositionEmbeddings: 131072);
}
