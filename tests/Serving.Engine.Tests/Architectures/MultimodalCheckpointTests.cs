using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Architectures;

/// Multimodal checkpoints serve their text decoder, as text in, text out: Qwen3-VL's layout (a nested text_config with
/// Qwen's multimodal rope, the decoder under model.language_model., a vision tower beside it) made from the qwen3
/// fixture gives transformers' logits for the fixture's prompts; Qwen2.5-VL's config (the text fields at the top level)
/// reads as Qwen2's.
public sealed class MultimodalCheckpointTests
{
    [Fact]
    public void AQwen3VlCheckpointAnswersAsItsTextDecoder()
    {
        using var folder = new TempDirectory();
        var fixture = Fixtures.Dir("qwen3-gqa");
        var text = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "config.json")))!.AsObject();
        text.Remove("architectures");
        text["model_type"] = "qwen3_vl_text";
        text.Remove("rope_parameters");
        text["rope_theta"] = 10000.0;
        text["rope_scaling"] = new JsonObject { ["rope_type"] = "default", ["mrope_section"] = new JsonArray(2, 3, 3), ["mrope_interleaved"] = true };
        Rewrap(folder.Path, "qwen3-gqa", ["tokenizer.json", "tokenizer_config.json", "generation_config.json"], new JsonObject
        {
            ["architectures"] = new JsonArray("Qwen3VLForConditionalGeneration"), ["model_type"] = "qwen3_vl",
            ["text_config"] = text, ["vision_config"] = new JsonObject { ["model_type"] = "qwen3_vl", ["depth"] = 1 },
            ["image_token_id"] = 500,
        }, name => name.StartsWith("model.", StringComparison.Ordinal) ? "model.language_model." + name["model.".Length..] : name,
            new() { ["model.visual.blocks.0.attn.qkv.weight"] = zeros(6, 2) });
        AssertAnswersAsTheFixture(folder.Path, "qwen3-gqa", "Qwen3ForCausalLM");
    }

    [Fact]
    public void AMistral3CheckpointServesItsMistralDecoder()
    {
        // Mistral Small 3.1 / 3.2: the decoder's config in text_config (model_type mistral), its tensors under
        // language_model.model. and language_model.lm_head, a Pixtral vision tower beside them
        using var folder = new TempDirectory();
        var fixture = Fixtures.Dir("llama-gqa");
        var text = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "config.json")))!.AsObject();
        text.Remove("architectures");
        text["model_type"] = "mistral";
        text["sliding_window"] = null;
        Rewrap(folder.Path, "llama-gqa", ["tokenizer.json", "tokenizer_config.json"], new JsonObject
        {
            ["architectures"] = new JsonArray("Mistral3ForConditionalGeneration"), ["model_type"] = "mistral3",
            ["text_config"] = text, ["vision_config"] = new JsonObject { ["model_type"] = "pixtral" }, ["torch_dtype"] = "float32",
        }, name => "language_model." + name,
            new() { ["vision_tower.patch_conv.weight"] = zeros(4, 3, 2, 2), ["multi_modal_projector.linear_1.weight"] = zeros(4, 4) });
        AssertAnswersAsTheFixture(folder.Path, "llama-gqa", "MistralForCausalLM");
    }

    /// The fixture's files and tensors (renamed) into folder as a multimodal checkpoint: its config and a vision tower's
    /// tensors beside the decoder's.
    static void Rewrap(string folder, string fixture, string[] files, JsonObject config, Func<string, string> rename,
        Dictionary<string, Tensor> vision)
    {
        foreach (var file in files) File.Copy(Path.Combine(Fixtures.Dir(fixture), file), Path.Combine(folder, file));
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        var tensors = new Dictionary<string, Tensor>(vision);
        using (var checkpoint = SafetensorsCheckpoint.Open(Fixtures.Dir(fixture)))
            foreach (var name in checkpoint.TensorNames) tensors[rename(name)] = checkpoint.Read(name);
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors);
    }

    /// The folder loads as the text architecture and gives transformers' last logits of the fixture's prompts.
    static void AssertAnswersAsTheFixture(string folder, string fixture, string architecture)
    {
        using var model = ModelLoader.Load(folder, "float32");
        Assert.Equal(architecture, model.Config.Architecture);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        foreach (var prompt in Fixtures.Reference(fixture).Prompts)
        {
            var runner = new PagedRunner(model, cache);
            var logits = runner.Step([(runner.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
            Assert.True(logits.Zip(prompt.LastLogits, (a, b) => Math.Abs(a - b)).Max() <= 1e-3);
        }
    }

    [Fact]
    public void AQwen25VlConfigReadsAsQwen2s()
    {
        using var folder = new TempDirectory();
        File.WriteAllText(Path.Combine(folder.Path, "config.json"), """
            {"architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl", "hidden_size": 3584,
             "intermediate_size": 18944, "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
             "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "max_position_embeddings": 128000, "sliding_window": 32768,
             "use_sliding_window": false, "tie_word_embeddings": false, "vocab_size": 152064, "torch_dtype": "bfloat16",
             "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "vision_config": {"depth": 32},
             "bos_token_id": 151643, "eos_token_id": 151645}
            """);
        var config = ModelConfig.Load(folder.Path);
        Assert.Equal(("Qwen2ForCausalLM", "qwen2", true, 4), (config.Architecture, config.ModelType, config.QkvBias, config.NumKeyValueHeads));
        Assert.Equal(new RopeConfig { Theta = 1000000.0 }, config.Rope);
        Assert.Empty(config.LayerWindows);   // use_sliding_window false
        Assert.Equal(128000, config.MaxContextLength);

        // Qwen2.5-VL's long context: yarn beside the mrope sections stays yarn
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder.Path, "config.json")))!.AsObject();
        json["rope_scaling"] = new JsonObject
        {
            ["type"] = "yarn", ["factor"] = 4.0, ["original_max_position_embeddings"] = 32768, ["mrope_section"] = new JsonArray(16, 24, 24),
        };
        File.WriteAllText(Path.Combine(folder.Path, "config.json"), json.ToJsonString());
        var yarn = ModelConfig.Load(folder.Path).Rope;
        Assert.Equal((RopeType.Yarn, 4.0, 32768), (yarn.Type, yarn.Factor, yarn.OriginalMaxPositionEmbeddings));
    }

    [Fact]
    public void AnotherDecoderInsideAWrapperIsRefused()
    {
        using var folder = new TempDirectory();
        File.WriteAllText(Path.Combine(folder.Path, "config.json"), """
            {"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3",
             "text_config": {"model_type": "ministral3", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
                             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512}}
            """);
        Assert.Contains("'text_config.model_type'", Assert.Throws<ModelConfigException>(() => ModelConfig.Load(folder.Path)).Message);
    }
}
