using Serving.Engine.Config;

namespace Serving.LoadGen.Checkpoints;

/// A named model shape for `init`: its config, how many special tokens close the vocabulary, and what it is.
internal sealed record CheckpointShape(string Name, ModelConfig Config, int NumSpecialTokens, string Description)
{
    /// Id of the first special token: the specials take the top NumSpecialTokens ids (Llama 3: 128000..128255).
    public int FirstSpecialId => Config.VocabSize - NumSpecialTokens;
    public int BosTokenId => FirstSpecialId;
    public int EosTokenId => FirstSpecialId + 1;
}

/// The shapes `init` writes. The llama3-8b trio matches the engine presets of issue 6 (Meta-Llama-3.1-8B's
/// config with the KV head count as the only difference); the tiny trio are twins of one another in the same way,
/// small enough for CPU tests. BOS/EOS ids are set from the generated tokenizer's layout.
internal static class CheckpointShapes
{
    public static IReadOnlyList<CheckpointShape> All { get; } =
    [
        Llama3_8B("llama3-8b", 8, "Llama-3-8B shape, GQA-8 (32 query heads, 8 KV heads), bf16"),
        Llama3_8B("llama3-8b-mha", 32, "its MHA twin: 32 KV heads"),
        Llama3_8B("llama3-8b-mqa", 1, "its MQA variant: 1 KV head"),
        Tiny("tiny-gqa", 2, "2 layers, hidden 256, 8 heads / 2 KV heads, vocab 1024, f32"),
        Tiny("tiny-mha", 8, "MHA twin of tiny-gqa: 8 KV heads"),
        Tiny("tiny-mqa", 1, "MQA variant of tiny-gqa: 1 KV head"),
    ];

    public static CheckpointShape Get(string name) =>
        All.FirstOrDefault(shape => shape.Name.Equals(name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown shape '{name}' (known: {string.Join(", ", All.Select(s => s.Name))})");

    static CheckpointShape Llama3_8B(string name, int numKVHeads, string description) => WithSpecialIds(new CheckpointShape(name, new ModelConfig
    {
        ModelType = "llama",
        Architectures = ["LlamaForCausalLM"],
        HiddenSize = 4096,
        IntermediateSize = 14336,
        NumHiddenLayers = 32,
        NumAttentionHeads = 32,
        NumKeyValueHeads = numKVHeads,
        HeadDim = 128,
        VocabSize = 128256,
        RmsNormEps = 1e-5,
        Rope = new RopeConfig { Theta = 500000, Type = RopeType.Llama3, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 8192 },
        MaxPositionEmbeddings = 131072,
        Dtype = "bfloat16",
    }, NumSpecialTokens: 256, description));

    static CheckpointShape Tiny(string name, int numKVHeads, string description) => WithSpecialIds(new CheckpointShape(name, new ModelConfig
    {
        ModelType = "llama",
        Architectures = ["LlamaForCausalLM"],
        HiddenSize = 256,
        IntermediateSize = 512,
        NumHiddenLayers = 2,
        NumAttentionHeads = 8,
        NumKeyValueHeads = numKVHeads,
        HeadDim = 32,
        VocabSize = 1024,
        RmsNormEps = 1e-5,
        MaxPositionEmbeddings = 2048,
        Dtype = "float32",
    }, NumSpecialTokens: 8, description));

    static CheckpointShape WithSpecialIds(CheckpointShape shape) =>
        shape with { Config = shape.Config with { BosTokenId = shape.BosTokenId, EosTokenIds = [shape.EosTokenId] } };
}
