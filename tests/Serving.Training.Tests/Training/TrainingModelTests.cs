using Serving.Engine.Model;
using Serving.Training.Tests.Support;
using Serving.Training.Training;
using static TorchSharp.torch;

namespace Serving.Training.Tests.Training;

public sealed class TrainingModelTests
{
    /// The dense backend (training) and the paged backend (serving) are the same decoder: on the reference
    /// checkpoints (GQA and MHA), every position's logits agree in float32.
    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("llama-mha")]
    [InlineData("qwen3-gqa")]
    public void DenseLogitsEqualThePagedEnginesOnTheReferenceCheckpoints(string fixture)
    {
        var prompts = Fixtures.Reference(fixture).Prompts.Select(p => p.InputIds).Take(3).ToArray();
        var length = prompts.Min(p => p.Length);
        using var training = TrainingModel.Load(Fixtures.Dir(fixture), ScalarType.Float32, CPU, length);
        using var engine = ModelLoader.Load(Fixtures.Dir(fixture), "float32");
        using var scope = NewDisposeScope();
        var batch = tensor(prompts.SelectMany(p => p.Take(length)).Select(t => (long)t).ToArray()).view(prompts.Length, length);
        var dense = training.Logits(batch).view(prompts.Length, length, -1);
        for (var b = 0; b < prompts.Length; b++)
        {
            var paged = EngineLogits(engine, prompts[b][..length]);
            var error = (dense[b] - paged).abs().max().item<float>();
            Assert.True(error <= 1e-5, $"{fixture} prompt {b}: max |dense - paged| = {error:E2}");
        }
    }

    /// A window in every layer (mistral's sliding_window, shorter than the prompts here): the dense backend masks it as
    /// the paged one does, every position's logits agreeing in float32.
    [Fact]
    public void DenseLogitsKeepAMistralWindow()
    {
        var folder = Directory.CreateTempSubdirectory("mistral-window-").FullName;
        try
        {
            foreach (var file in Directory.GetFiles(Fixtures.Dir("llama-gqa")))
                File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
            var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
            config["architectures"] = new System.Text.Json.Nodes.JsonArray("MistralForCausalLM");
            config["model_type"] = "mistral";
            config["sliding_window"] = 3;
            File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
            var prompts = Fixtures.Reference("llama-gqa").Prompts.Select(p => p.InputIds).Take(3).ToArray();
            var length = prompts.Min(p => p.Length);
            Assert.True(length > 3);
            using var training = TrainingModel.Load(folder, ScalarType.Float32, CPU, length);
            using var engine = ModelLoader.Load(folder, "float32");
            using var unwindowed = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32");
            using var scope = NewDisposeScope();
            var batch = tensor(prompts.SelectMany(p => p.Take(length)).Select(t => (long)t).ToArray()).view(prompts.Length, length);
            var dense = training.Logits(batch).view(prompts.Length, length, -1);
            for (var b = 0; b < prompts.Length; b++)
            {
                var paged = EngineLogits(engine, prompts[b][..length]);
                Assert.True((dense[b] - paged).abs().max().item<float>() <= 1e-5, $"prompt {b}: the dense backend parts from the paged one");
                Assert.True((paged - EngineLogits(unwindowed, prompts[b][..length])).abs().max().item<float>() > 1e-3, "the window changes nothing");
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void ParametersAreViewsOfTheFlatTensorAndTheirGradientsOfTheFlatGradients()
    {
        using var model = TrainingModel.Create(TinyCorpus.Config(numKVHeads: 2), ScalarType.Float32, CPU, 32, seed: 1);
        using var scope = NewDisposeScope();
        var first = model.Master.parameters().First();
        using (no_grad()) model.MasterWeights.narrow(0, 0, 1).copy_(tensor(42.0f));
        Assert.Equal(42.0f, first.view(-1)[0].item<float>());
        var loss = model.Loss(tensor(TinyCorpus.Tokens(33 * 2, seed: 3)).view(2, 33));
        loss.backward();
        var gradients = model.Gradients32();
        Assert.True(gradients.abs().sum().item<float>() > 0);
        Assert.Equal(first.grad!.view(-1)[0].item<float>(), gradients[0].item<float>());
        Assert.Equal(model.NumParameters, gradients.shape[0]);
    }

    [Fact]
    public void BFloat16ComputeKeepsFloat32MasterWeightsAndFollowsThem()
    {
        using var model = TrainingModel.Create(TinyCorpus.Config(), ScalarType.BFloat16, CPU, 32, seed: 1);
        using var scope = NewDisposeScope();
        Assert.Equal(ScalarType.Float32, model.MasterWeights.dtype);
        var loss = model.Loss(tensor(TinyCorpus.Tokens(33 * 2, seed: 3)).view(2, 33));
        loss.backward();
        Assert.Equal(ScalarType.Float32, model.Gradients32().dtype);
        using (no_grad()) model.MasterWeights.add_(Serving.Engine.HeldScalars.One);
        model.CopyMasterToCompute();
        var after = model.Loss(tensor(TinyCorpus.Tokens(33 * 2, seed: 3)).view(2, 33));
        Assert.NotEqual(loss.item<float>(), after.item<float>());
    }

    [Fact]
    public void TrainingInitialisationIsTransformersLlama()
    {
        using var model = TrainingModel.Create(TinyCorpus.Config(), ScalarType.Float32, CPU, 32, seed: 1);
        foreach (var (name, parameter) in model.Master.named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) Assert.True(parameter.eq(Serving.Engine.HeldScalars.One).all().item<bool>(), name);
            else Assert.InRange(parameter.std().item<float>(), 0.015f, 0.025f);
        }
    }

    // every position's logits of one sequence through the engine's paged path: (length, vocab)
    static Tensor EngineLogits(LoadedModel engine, int[] ids)
    {
        using var cache = engine.CreateKVCache(numBlocks: 16, blockSize: 16);
        var blocks = Enumerable.Range(0, (ids.Length + 15) / 16).ToArray();
        return engine.ForwardAllLogits(StepInputs.Build([new StepSequence(ids, 0, ids.Length, blocks)], 16), cache);
    }
}
