using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// Loading broken copies of a fixture fails before any weight is allocated, naming what is wrong.
public sealed class ModelLoaderTests
{
    [Fact]
    public void AnUnsupportedModelTypeIsRefusedNamingTheField()
    {
        using var dir = TempDirectory.CopyOf("llama-gqa");
        var config = JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!.AsObject();
        config["model_type"] = "gpt_neox";
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        var error = Assert.Throws<ModelConfigException>(() => ModelLoader.Load(dir.Path));
        Assert.Contains("'model_type'", error.Message);
        Assert.Contains("gpt_neox", error.Message);
    }

    [Fact]
    public void AMissingWeightIsRefusedNamingTheTensor()
    {
        using var dir = TempDirectory.CopyOf("llama-gqa");
        RewriteWeights(dir, (name, tensor) => name == "model.layers.1.mlp.up_proj.weight" ? null : tensor);
        var error = Assert.Throws<CheckpointException>(() => ModelLoader.Load(dir.Path));
        Assert.Contains("missing weight 'model.layers.1.mlp.up_proj.weight'", error.Message);
        Assert.Contains("[176, 64]", error.Message);
    }

    [Fact]
    public void AWrongShapeIsRefusedNamingTheTensorAndBothShapes()
    {
        using var dir = TempDirectory.CopyOf("llama-gqa");
        RewriteWeights(dir, (name, tensor) => name == "model.layers.0.self_attn.k_proj.weight" ? tensor.narrow(0, 0, 8) : tensor);
        var error = Assert.Throws<CheckpointException>(() => ModelLoader.Load(dir.Path));
        Assert.Contains("'model.layers.0.self_attn.k_proj.weight' has shape [8, 64], expected [16, 64]", error.Message);
    }

    [Fact]
    public void ACorruptSafetensorsHeaderIsRefusedNamingTheFile()
    {
        using var dir = TempDirectory.CopyOf("llama-gqa");
        var bytes = File.ReadAllBytes(dir.File("model.safetensors"));
        bytes[20] = (byte)'}';  // the JSON header now ends early, followed by garbage
        File.WriteAllBytes(dir.File("model.safetensors"), bytes);
        var error = Assert.Throws<CheckpointException>(() => ModelLoader.Load(dir.Path));
        Assert.Contains("model.safetensors: corrupt safetensors header", error.Message);
    }

    [Fact]
    public void ATruncatedCheckpointIsRefusedNamingTheTensorCut()
    {
        using var dir = TempDirectory.CopyOf("llama-gqa");
        var bytes = File.ReadAllBytes(dir.File("model.safetensors"));
        File.WriteAllBytes(dir.File("model.safetensors"), bytes[..(bytes.Length - 100)]);
        var error = Assert.Throws<CheckpointException>(() => ModelLoader.Load(dir.Path));
        Assert.Contains("outside the data section", error.Message);
        Assert.Contains("model.norm.weight", error.Message);
    }

    [Fact]
    public void ProgressIsReportedForEveryTensorAndAutoTakesTheCheckpointDtype()
    {
        var reports = new List<WeightLoadProgress>();
        using var model = ModelLoader.Load(Fixtures.Dir("llama-sp-mqa"), "auto", CPU, new SynchronousProgress(reports.Add));
        Assert.Equal(ScalarType.Float32, model.Dtype);
        Assert.Equal(21, reports.Count);
        Assert.Equal(Enumerable.Range(1, 21), reports.Select(r => r.TensorsLoaded));
        Assert.Equal(1.0, reports[^1].Fraction);
        Assert.Equal(new FileInfo(Path.Combine(Fixtures.Dir("llama-sp-mqa"), "model.safetensors")).Length,
            reports[^1].TotalBytes + 8 + 2136);  // data section = file - header length prefix - header
    }

    [Fact]
    public void ShardedAndBfloat16StoredCheckpointsLoad()
    {
        using var dir = TempDirectory.CopyOf("llama-gqa");
        File.Delete(dir.File("model.safetensors"));
        using (var source = SafetensorsCheckpoint.Open(Fixtures.Dir("llama-gqa")))
        using (var scope = NewDisposeScope())
        {
            var names = source.TensorNames.Order().ToArray();
            var shards = names.Chunk(11).Select((chunk, i) => (File: $"model-0000{i + 1}-of-00002.safetensors", Names: chunk)).ToArray();
            foreach (var (file, chunk) in shards)
                SafetensorsWriter.Write(dir.File(file), chunk.ToDictionary(n => n, n => source.Read(n).to_type(ScalarType.BFloat16)));
            var map = new JsonObject(shards.SelectMany(s => s.Names.Select(n => KeyValuePair.Create(n, (JsonNode?)s.File))));
            File.WriteAllText(dir.File(SafetensorsCheckpoint.IndexFile), new JsonObject { ["weight_map"] = map }.ToJsonString());
        }
        using var model = ModelLoader.Load(dir.Path, "float32");
        using var cache = model.CreateKVCache(16, 16);
        var prompt = Fixtures.Reference("llama-gqa").Prompts[0];
        var runner = new PagedRunner(model, cache);
        var logits = runner.Step([(runner.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
        // bf16-rounded weights computed in float32: close to the reference, not equal
        Assert.True(logits.Zip(prompt.LastLogits).Max(p => Math.Abs(p.First - p.Second)) < 0.05);
    }

    /// Replaces model.safetensors by the fixture's tensors passed through edit (null drops a tensor).
    /// A checkpoint's FP8 KV cache scales (vLLM's names: the attention module's k_scale / v_scale, or the older
    /// k_proj.output_scale / v_proj.output_scale) are read per layer under the attention module's name in that family's
    /// checkpoints (Llama's self_attn, EXAONE's attn.attention); a layer without them is refused naming the tensor.
    [Theory]
    [InlineData(false, "{0}k_scale", "{0}v_scale")]
    [InlineData(false, "{0}k_proj.output_scale", "{0}v_proj.output_scale")]
    [InlineData(true, "{0}k_scale", "{0}v_scale")]
    public void ACheckpointsKVCacheScalesAreReadUnderItsAttentionsNames(bool exaone, string kName, string vName)
    {
        using var dir = new TempDirectory();
        if (exaone) Architectures.LlamaVariantsTests.Write(Architectures.LlamaVariantsTests.Family.Exaone, dir.Path);
        else foreach (var file in Directory.GetFiles(Fixtures.Dir("llama-gqa"))) File.Copy(file, dir.File(Path.GetFileName(file)));
        Dictionary<string, Tensor> weights;
        using (var source = SafetensorsCheckpoint.Open(dir.Path))
            weights = source.TensorNames.ToDictionary(name => name, name => source.Read(name));
        var layers = ModelConfig.Load(dir.Path).NumHiddenLayers;
        string Attention(int layer) => exaone ? $"transformer.h.{layer}.attn.attention." : $"model.layers.{layer}.self_attn.";
        for (var layer = 0; layer < layers; layer++)
        {
            weights[string.Format(kName, Attention(layer))] = tensor(0.5f + layer);
            weights[string.Format(vName, Attention(layer))] = tensor(0.25f + layer);
        }
        SafetensorsWriter.Write(dir.File(SafetensorsCheckpoint.SingleFile), weights);
        using (var model = ModelLoader.Load(dir.Path, "float32"))
        {
            var scales = model.CheckpointKVScales;
            Assert.NotNull(scales);
            for (var layer = 0; layer < layers; layer++)
            {
                Assert.Equal(0.5f + layer, scales[layer, 0]);
                Assert.Equal(0.25f + layer, scales[layer, 1]);
            }
        }
        weights.Remove(string.Format(vName, Attention(layers - 1)));
        SafetensorsWriter.Write(dir.File(SafetensorsCheckpoint.SingleFile), weights);
        var error = Assert.Throws<CheckpointException>(() => ModelLoader.Load(dir.Path, "float32"));
        Assert.Contains(string.Format("{0}v_scale", Attention(layers - 1)), error.Message);
    }

    static void RewriteWeights(TempDirectory dir, Func<string, Tensor, Tensor?> edit)
    {
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>();
        using (var source = SafetensorsFile.Open(Path.Combine(Fixtures.Dir("llama-gqa"), "model.safetensors")))
            foreach (var name in source.Tensors.Keys)
                if (edit(name, source.Read(name)) is { } kept) tensors[name] = kept.contiguous();
        SafetensorsWriter.Write(dir.File("model.safetensors"), tensors);
    }

    /// Progress<T> posts to the thread pool; this one reports inline so the test sees every report.
    sealed class SynchronousProgress(Action<WeightLoadProgress> report) : IProgress<WeightLoadProgress>
    {
        public void Report(WeightLoadProgress value) => report(value);
    }
}
