using System.Text.Json.Nodes;
using Serving.Engine.Architectures;
using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Architectures;

/// Phi-3 checkpoints store qkv_proj and gate_up_proj already fused. With full rotary and no longrope a Phi-3 is
/// a Llama in another layout, so llama-gqa rewritten the way Phi-3 checkpoints are laid out must give exactly
/// transformers' Llama outputs: that checks the layout (which rows are q, k, v, gate, up) without a Phi-3 fixture.
public sealed class Phi3LayoutTests
{
    [Fact]
    public void LlamaRewrittenAsPhi3GivesTheLlamaReference()
    {
        using var dir = TempDirectory.CopyOf("llama-gqa");
        var config = ModelConfig.Load(dir.Path);
        RewriteAsPhi3(dir.Path, config);
        using var model = ModelLoader.Load(dir.Path, "float32");
        Assert.Equal("Phi3ForCausalLM", model.Config.Architecture);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        foreach (var prompt in Fixtures.Reference("llama-gqa").Prompts)
        {
            var runner = new PagedRunner(model, cache);
            var logits = runner.Step([(runner.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
            Assert.True(logits.Zip(prompt.LastLogits).Max(p => Math.Abs(p.First - p.Second)) <= 1e-3);
        }
    }

    [Fact]
    public void TheFusedTensorsNameTheKindsOfTheirRows()
    {
        var config = ModelConfig.Load(Fixtures.Dir("llama-gqa")) with { Architectures = ["Phi3ForCausalLM"], ModelType = "phi3" };
        var qkv = ArchitectureRegistry.Layout(config).Single(b => b.CheckpointName == "model.layers.0.self_attn.qkv_proj.weight");
        Assert.Equal([RowKind.QueryHeads, RowKind.KeyHeads, RowKind.ValueHeads], qkv.Segments.Select(s => s.Kind));
        Assert.Equal([64L, 16, 16], qkv.Segments.Select(s => s.Rows));
    }

    internal static void RewriteAsPhi3(string directory, ModelConfig config)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "config.json")))!.AsObject();
        json["architectures"] = new JsonArray("Phi3ForCausalLM");
        json["model_type"] = "phi3";
        File.WriteAllText(Path.Combine(directory, "config.json"), json.ToJsonString());
        var tensors = new Dictionary<string, Tensor>();
        using (var checkpoint = SafetensorsCheckpoint.Open(directory))
        {
            foreach (var name in checkpoint.TensorNames) tensors[name] = checkpoint.Read(name);
        }
        for (var layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            var p = $"model.layers.{layer}.";
            tensors[p + "self_attn.qkv_proj.weight"] = cat([Take(p + "self_attn.q_proj.weight"), Take(p + "self_attn.k_proj.weight"), Take(p + "self_attn.v_proj.weight")]);
            tensors[p + "mlp.gate_up_proj.weight"] = cat([Take(p + "mlp.gate_proj.weight"), Take(p + "mlp.up_proj.weight")]);
        }
        File.Delete(Path.Combine(directory, SafetensorsCheckpoint.SingleFile));
        SafetensorsWriter.Write(Path.Combine(directory, SafetensorsCheckpoint.SingleFile), tensors);

        Tensor Take(string name)
        {
            var tensor = tensors[name];
            tensors.Remove(name);
            return tensor;
        }
    }
}
