using Serving.Engine.Config;
using Serving.Engine.Model;

namespace Serving.LoadGen.Checkpoints;

/// A named model shape for `init`: its config, how many special tokens close the vocabulary, and what it is.
internal sealed record CheckpointShape(string Name, ModelConfig Config, int NumSpecialTokens, string Description)
{
    /// Id of the first special token: the specials take the top NumSpecialTokens ids (Llama 3: 128000..128255).
    public int FirstSpecialId => Config.VocabSize - NumSpecialTokens;
    public int BosTokenId => FirstSpecialId;
    public int EosTokenId => FirstSpecialId + 1;
}

/// The shapes `init` writes: the engine's presets (ModelPresets, what `--model llama3-8b` serves from random
/// weights without files) plus two tiny twins of tiny-gqa for CPU A/B runs. BOS/EOS ids follow the generated
/// tokenizer's layout (specials at the top of the vocabulary), which for Llama 3 are the real ids 128000/128001.
internal static class CheckpointShapes
{
    public static IReadOnlyList<CheckpointShape> All { get; } =
    [
        Shape("llama3-8b", ModelPresets.Get("llama3-8b"), 256, "Llama-3-8B shape, GQA-8 (32 query heads, 8 KV heads), bf16"),
        Shape("llama3-8b-mha", ModelPresets.Get("llama3-8b-mha"), 256, "its MHA twin: 32 KV heads"),
        Shape("llama3-8b-mqa", ModelPresets.Get("llama3-8b-mqa"), 256, "its MQA variant: 1 KV head"),
        Shape("llama3-70b", ModelPresets.Get("llama3-70b"), 256, "Llama-3-70B shape (80 layers, 64 query heads, 8 KV heads), bf16: 141 GB, for tensor parallelism"),
        Shape("tiny-gqa", ModelPresets.Get("tiny-gqa"), 8, "2 layers, hidden 256, 8 heads / 2 KV heads of 32, vocab 1024, f32"),
        Shape("tiny-gqa-mha", ModelPresets.Get("tiny-gqa") with { NumKeyValueHeads = 8 }, 8, "MHA twin of tiny-gqa: 8 KV heads"),
        Shape("tiny-mqa", ModelPresets.Get("tiny-gqa") with { NumKeyValueHeads = 1 }, 8, "MQA variant of tiny-gqa: 1 KV head"),
        Shape("tiny-mha", ModelPresets.Get("tiny-mha"), 8, "the engine's tiny MHA preset: 4 heads of 64, hidden 256"),
    ];

    public static CheckpointShape Get(string name) =>
        All.FirstOrDefault(shape => shape.Name.Equals(name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown shape '{name}' (known: {string.Join(", ", All.Select(s => s.Name))})");

    static CheckpointShape Shape(string name, ModelConfig config, int numSpecialTokens, string description)
    {
        var shape = new CheckpointShape(name, config, numSpecialTokens, description);
        return shape with { Config = config with { BosTokenId = shape.BosTokenId, EosTokenIds = [shape.EosTokenId] } };
    }
}
