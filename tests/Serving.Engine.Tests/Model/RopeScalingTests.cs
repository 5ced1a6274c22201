using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// Rope scaling reaches the model's attention. A yarn rope of factor 1 keeps every frequency and only multiplies
/// cos and sin by its attention factor a, and rotation is linear: so it must give exactly what the plain rope gives
/// with q_proj and k_proj multiplied by a (every score scaled by a squared).
public sealed class RopeScalingTests
{
    const double AttentionFactor = 1.5;

    [Fact]
    public void YarnsAttentionFactorScalesQueriesAndKeys()
    {
        var yarn = HfOverrides.Parse("""{"rope_parameters": {"rope_type": "yarn", "factor": 1.0, "attention_factor": 1.5}}""");
        using var scaled = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32", hfOverrides: yarn);
        Assert.Equal(RopeType.Yarn, scaled.Config.Rope.Type);

        using var dir = TempDirectory.CopyOf("llama-gqa");
        ScaleQueryAndKeyProjections(dir.Path, scaled.Config.NumHiddenLayers);
        using var plain = ModelLoader.Load(dir.Path, "float32");

        foreach (var prompt in Fixtures.Reference("llama-gqa").Prompts)
        {
            var expected = LastLogits(plain, prompt.InputIds);
            var actual = LastLogits(scaled, prompt.InputIds);
            Assert.True(expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second)) <= 1e-4);
            // and the factor does change the answer (a one-token prompt attends to itself alone, whatever the scores)
            if (prompt.InputIds.Length > 1)
                Assert.True(actual.Zip(prompt.LastLogits).Max(p => Math.Abs(p.First - p.Second)) > 1e-3);
        }
    }

    static float[] LastLogits(LoadedModel model, int[] prompt)
    {
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        var runner = new PagedRunner(model, cache);
        return runner.Step([(runner.Add(prompt), prompt.Length)])[0];
    }

    static void ScaleQueryAndKeyProjections(string directory, int numLayers)
    {
        var tensors = new Dictionary<string, Tensor>();
        using (var checkpoint = SafetensorsCheckpoint.Open(directory))
        {
            foreach (var name in checkpoint.TensorNames) tensors[name] = checkpoint.Read(name);
        }
        for (var layer = 0; layer < numLayers; layer++)
            foreach (var projection in new[] { "q_proj", "k_proj" })
            {
                var name = $"model.layers.{layer}.self_attn.{projection}.weight";
                tensors[name] = tensors[name] * AttentionFactor;
            }
        SafetensorsWriter.Write(Path.Combine(directory, SafetensorsCheckpoint.SingleFile), tensors);
    }
}
