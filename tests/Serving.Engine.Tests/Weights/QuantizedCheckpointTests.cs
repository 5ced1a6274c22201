using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using Xunit.Abstractions;
using static Serving.Engine.Tests.Execution.EngineTestHelpers;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Weights;

/// Quantized checkpoints as published: FP8 (transformers' fp8 method with 2-D block scales, weight_scale_inv;
/// llm-compressor's compressed-tensors with a scale per output channel or per tensor, weight_scale) and integers packed
/// in int32 (AutoAWQ's GEMM layout; GPTQ's, 4 and 8 bits, with act-order's g_idx and both zero-point formats). The
/// fixture's projections quantized and packed here, by each format's definition, then loaded, give exactly the logits of
/// the same model stored in float32 with the values the quantized tensors stand for, on one rank and on two.
public sealed class QuantizedCheckpointTests(ITestOutputHelper output)
{
    /// BlockScaleInv: 32 x 48 blocks (dequantized wherever it is served); Block128ScaleInv: 128 x 128 blocks, DeepSeek's
    /// and Qwen's (FP8 products serve those: on a fixture of whole blocks, WideLlama).
    public enum Format { BlockScaleInv, Block128ScaleInv, ChannelScale, TensorScale, Awq, Gptq, GptqActOrder8Bit, GptqV2 }

    [Theory]
    [InlineData(Format.BlockScaleInv)]
    [InlineData(Format.ChannelScale)]
    [InlineData(Format.TensorScale)]
    [InlineData(Format.Awq)]
    [InlineData(Format.Gptq)]
    [InlineData(Format.GptqActOrder8Bit)]
    [InlineData(Format.GptqV2)]
    public void AQuantizedCheckpointLoadsAsTheValuesItStandsFor(Format format)
    {
        using var quantized = new TempDirectory();
        using var reference = new TempDirectory();
        Quantize(Fixtures.Dir("llama-gqa"), format, quantized.Path, reference.Path);
        foreach (var ranks in new[] { 1, 2 })
        {
            using var fp8 = ModelLoader.Load(quantized.Path, "float32", tensorParallelSize: ranks);
            using var plain = ModelLoader.Load(reference.Path, "float32");
            Assert.NotNull(fp8.Config.Quantization);
            var worst = 0.0;
            foreach (var prompt in Fixtures.Reference("llama-gqa").Prompts)
            {
                var (a, b) = (LastLogits(fp8, prompt.InputIds), LastLogits(plain, prompt.InputIds));
                worst = Math.Max(worst, a.Zip(b, (x, y) => Math.Abs(x - y)).Max());
                // the quantization itself moves the logits a little from the float32 model's
                output.WriteLine($"{format}, {ranks} rank(s): max |fp8 - float32 original| = {a.Zip(prompt.LastLogits, (x, y) => Math.Abs(x - y)).Max():F4}");
            }
            Assert.True(worst <= 1e-5, $"{format} on {ranks} rank(s): max |fp8 - dequantized float32| = {worst}");
        }
    }

    /// The loader returns, for each projection an FP8 checkpoint stores scaled per tensor or per output channel, the
    /// scale of each of its rows (a fused projection's parts' one after another: q, k, v and gate, up each keep their
    /// own), and the loaded values divided by them are e4m3 values again: what serving it in FP8 as stored needs (on a
    /// GPU, Linear.CheckpointFp8Scales and LoadedModel.KeepCheckpointFp8). Block scales, and a projection the checkpoint
    /// left in 16 bits (here layer 0's down_proj, on the ignore list), give none: those stay in the model's type.
    [Theory]
    [InlineData(Format.TensorScale)]
    [InlineData(Format.ChannelScale)]
    [InlineData(Format.BlockScaleInv)]
    public void EachFp8ProjectionKeepsItsCheckpointsScalePerRow(Format format)
    {
        const string left16Bit = "model.layers.0.mlp.down_proj";
        using var quantized = new TempDirectory();
        using var reference = new TempDirectory();
        Quantize(Fixtures.Dir("llama-gqa"), format, quantized.Path, reference.Path, leaveIn16Bits: left16Bit + ".weight");
        using var checkpoint = SafetensorsCheckpoint.Open(quantized.Path);
        var config = ModelConfig.Load(quantized.Path);
        var shard = Serving.Engine.Distributed.ModelShard.Whole(config);
        using var model = new CausalLM(shard, ScalarType.Float32, CPU);
        var loaded = WeightLoader.Load(model, checkpoint, Serving.Engine.Architectures.ArchitectureRegistry.For(config).Layout(config), shard, null,
            config.Quantization);
        var projections = model.named_modules().Where(m => m.module is Linear { Target: not null }).ToList();
        Assert.NotEmpty(projections);
        foreach (var (name, module) in projections)
        {
            var linear = (Linear)module;
            if (format == Format.BlockScaleInv || "model." + name == left16Bit)
            {
                Assert.False(loaded.ContainsKey(name + ".weight"), $"{name} has scales");
                continue;
            }
            var scales = loaded.GetValueOrDefault(name + ".weight")?.data<float>().ToArray();
            Assert.True(scales is not null, $"{name} has no scales");
            Assert.Equal(CheckpointTensorsOf(name).SelectMany(tensor => RowScales(checkpoint, tensor)).ToArray(), scales);
            var weight = linear.Weight.data<float>().ToArray();
            var columns = (int)linear.Weight.size(1);
            for (var i = 0; i < weight.Length; i++)
            {
                var value = weight[i] / scales[i / columns];
                Assert.True(Math.Abs(value - E4M3.Nearest(value)) <= 1e-5 * Math.Abs(value), $"{name}[{i}]: {weight[i]} / {scales[i / columns]} is no e4m3 value");
            }
        }
        foreach (var scales in loaded.Values) scales.Dispose();
    }

    /// Under tensor parallelism each rank's scales are those of the rows it loads: q, k, v's and gate, up's halves (the
    /// rank's heads and ffn columns, one after another), and every row of o_proj and down_proj (split by columns).
    [Theory]
    [InlineData(Format.TensorScale)]
    [InlineData(Format.ChannelScale)]
    public void ATensorParallelRankKeepsTheScalesOfItsRows(Format format)
    {
        using var quantized = new TempDirectory();
        using var reference = new TempDirectory();
        Quantize(Fixtures.Dir("llama-gqa"), format, quantized.Path, reference.Path);
        using var checkpoint = SafetensorsCheckpoint.Open(quantized.Path);
        var config = ModelConfig.Load(quantized.Path);
        var bindings = Serving.Engine.Architectures.ArchitectureRegistry.For(config).Layout(config);
        float[] Scales(string tensor) => RowScales(checkpoint, tensor);
        float[] Half(string tensor)
        {
            var all = Scales(tensor);
            return all[(all.Length / 2)..];
        }
        // rank 1 of 2: the second half of a split tensor's rows
        var shard = Serving.Engine.Distributed.ModelShard.Of(config, 1, 2);
        using var model = new CausalLM(shard, ScalarType.Float32, CPU);
        var scales = WeightLoader.Load(model, checkpoint, bindings, shard, null, config.Quantization);
        try
        {
            for (var layer = 0; layer < config.NumHiddenLayers; layer++)
            {
                var (attention, mlp) = ($"model.layers.{layer}.self_attn.", $"model.layers.{layer}.mlp.");
                Assert.Equal([.. Half(attention + "q_proj"), .. Half(attention + "k_proj"), .. Half(attention + "v_proj")],
                    scales[$"layers.{layer}.self_attn.qkv_proj.weight"].data<float>().ToArray());
                Assert.Equal(Scales(attention + "o_proj"), scales[$"layers.{layer}.self_attn.o_proj.weight"].data<float>().ToArray());
                Assert.Equal([.. Half(mlp + "gate_proj"), .. Half(mlp + "up_proj")],
                    scales[$"layers.{layer}.mlp.gate_up_proj.weight"].data<float>().ToArray());
                Assert.Equal(Scales(mlp + "down_proj"), scales[$"layers.{layer}.mlp.down_proj.weight"].data<float>().ToArray());
            }
        }
        finally
        {
            foreach (var tensor in scales.Values) tensor.Dispose();
        }
    }

    /// A checkpoint of 128 x 128 block scales (DeepSeek's and Qwen's -FP8) gives each projection its scales by row and
    /// group of 128 columns, a block's on each of its 128 rows (a fused projection's parts one after another), and the
    /// loaded values divided by them are e4m3 values again. A tensor-parallel rank keeps its rows' (q, k, v's and gate,
    /// up's halves) and, where it takes columns (o_proj, down_proj), the groups of its columns.
    [Fact]
    public void EachFp8ProjectionKeepsItsCheckpointsBlockScalesByRowAndGroup()
    {
        using var wide = new TempDirectory();
        using var quantized = new TempDirectory();
        using var reference = new TempDirectory();
        WideLlama(wide.Path);
        Quantize(wide.Path, Format.Block128ScaleInv, quantized.Path, reference.Path);
        using var checkpoint = SafetensorsCheckpoint.Open(quantized.Path);
        var config = ModelConfig.Load(quantized.Path);
        var bindings = Serving.Engine.Architectures.ArchitectureRegistry.For(config).Layout(config);

        var whole = Serving.Engine.Distributed.ModelShard.Whole(config);
        using (var model = new CausalLM(whole, ScalarType.Float32, CPU))
        {
            var loaded = WeightLoader.Load(model, checkpoint, bindings, whole, null, config.Quantization);
            try
            {
                var projections = model.named_modules().Where(m => m.module is Linear { Target: not null }).ToList();
                Assert.Equal(4 * config.NumHiddenLayers, projections.Count);
                foreach (var (name, module) in projections)
                {
                    var weight = ((Linear)module).Weight;
                    var (rows, columns) = (weight.size(0), (int)weight.size(1));
                    var scales = loaded[name + ".weight"];
                    Assert.Equal([rows, columns / 128], scales.shape);
                    Assert.Equal(CheckpointTensorsOf(name).SelectMany(tensor => RowGroupScales(checkpoint, tensor)).ToArray(), scales.data<float>().ToArray());
                    var (values, byGroup) = (weight.data<float>().ToArray(), scales.data<float>().ToArray());
                    for (var i = 0; i < values.Length; i++)
                    {
                        var value = values[i] / byGroup[i / columns * (columns / 128) + i % columns / 128];
                        Assert.True(Math.Abs(value - E4M3.Nearest(value)) <= 1e-5 * Math.Abs(value), $"{name}[{i}]: {value} is no e4m3 value");
                    }
                }
            }
            finally
            {
                foreach (var tensor in loaded.Values) tensor.Dispose();
            }
        }

        // rank 1 of 2: the second half of a split tensor's rows; o_proj's and down_proj's second half of the columns
        var shard = Serving.Engine.Distributed.ModelShard.Of(config, 1, 2);
        using var rankModel = new CausalLM(shard, ScalarType.Float32, CPU);
        var rank = WeightLoader.Load(rankModel, checkpoint, bindings, shard, null, config.Quantization);
        try
        {
            float[] Rows(string tensor, bool secondHalf = true)
            {
                var all = RowGroupScales(checkpoint, tensor);
                return secondHalf ? all[(all.Length / 2)..] : all;
            }
            float[] SecondHalfOfColumns(string tensor)
            {
                var groups = (int)checkpoint.Info(tensor + ".weight").Shape[1] / 128;
                return [.. Rows(tensor, secondHalf: false).Where((_, i) => i % groups >= groups / 2)];
            }
            for (var layer = 0; layer < config.NumHiddenLayers; layer++)
            {
                var (attention, mlp) = ($"model.layers.{layer}.self_attn.", $"model.layers.{layer}.mlp.");
                Assert.Equal([.. Rows(attention + "q_proj"), .. Rows(attention + "k_proj"), .. Rows(attention + "v_proj")],
                    rank[$"layers.{layer}.self_attn.qkv_proj.weight"].data<float>().ToArray());
                Assert.Equal(SecondHalfOfColumns(attention + "o_proj"), rank[$"layers.{layer}.self_attn.o_proj.weight"].data<float>().ToArray());
                Assert.Equal([.. Rows(mlp + "gate_proj"), .. Rows(mlp + "up_proj")], rank[$"layers.{layer}.mlp.gate_up_proj.weight"].data<float>().ToArray());
                Assert.Equal(SecondHalfOfColumns(mlp + "down_proj"), rank[$"layers.{layer}.mlp.down_proj.weight"].data<float>().ToArray());
            }
        }
        finally
        {
            foreach (var tensor in rank.Values) tensor.Dispose();
        }
    }

    /// A model made with its projections unallocated (as an FP8 checkpoint loads where FP8 products serve it) gets each
    /// allocated as the loader reaches it and handed back once full, with its FP8 scales, before the next is allocated:
    /// so at most one projection (a layer's experts of one kind, for a mixture) is ever in 16 bits beside those handed
    /// back. What is loaded is what a model allocated whole loads, scales included, on one rank and on a rank of two;
    /// a mixture's experts get the checkpoint's scales of each expert's tensors, stacked as the experts are.
    [Theory]
    [InlineData(Format.Block128ScaleInv, 1, false)]
    [InlineData(Format.Block128ScaleInv, 2, false)]
    [InlineData(Format.ChannelScale, 1, false)]
    [InlineData(Format.Block128ScaleInv, 1, true)]
    [InlineData(Format.ChannelScale, 1, true)]
    public void UnallocatedProjectionsLoadOneAtATime(Format format, int ranks, bool mixture)
    {
        using var wide = new TempDirectory();
        using var quantized = new TempDirectory();
        using var reference = new TempDirectory();
        if (mixture) WideQwen3Moe(wide.Path);
        else WideLlama(wide.Path);
        Quantize(wide.Path, format, quantized.Path, reference.Path);
        using var checkpoint = SafetensorsCheckpoint.Open(quantized.Path);
        var config = ModelConfig.Load(quantized.Path);
        var bindings = Serving.Engine.Architectures.ArchitectureRegistry.For(config).Layout(config);
        var shard = Serving.Engine.Distributed.ModelShard.Of(config, ranks - 1, ranks);
        using var whole = new CausalLM(shard, ScalarType.Float32, CPU);
        var expected = WeightLoader.Load(whole, checkpoint, bindings, shard, null, config.Quantization);
        using var model = new CausalLM(shard, ScalarType.Float32, CPU, projectionsUnallocated: true);
        var projections = model.named_modules().Where(m => m.module is IFp8Storable).ToDictionary(m => m.name + ".weight", m => (IFp8Storable)m.module);
        // the decoder's: qkv, o and gate/up, down or the experts of each kind; not the router or the LM head
        Assert.Equal(4 * config.NumHiddenLayers, projections.Values.Count(projection => projection.Unallocated));
        if (mixture) Assert.Equal(2 * config.NumHiddenLayers, projections.Values.OfType<ExpertWeights>().Count(experts => experts.Unallocated));
        projections = projections.Where(p => p.Value.Unallocated).ToDictionary();
        var recorder = new RecordingUnallocated(projections, whole.named_parameters().ToDictionary(p => p.name, p => p.parameter));
        var rest = WeightLoader.Load(model, checkpoint, bindings, shard, null, config.Quantization, recorder);
        try
        {
            Assert.Equal(projections.Keys.Order(), recorder.HandedBack.Keys.Order());
            Assert.Equal(1, recorder.MostAllocatedAtOnce);
            Assert.DoesNotContain(rest.Keys, projections.ContainsKey);   // their scales went with them
            var wholeParameters = whole.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, parameter) in model.named_parameters())
                Assert.True(parameter.equal(wholeParameters[name]).all().item<bool>(), $"{name} differs from the model allocated whole");
            foreach (var (name, scales) in recorder.HandedBack)
                Assert.True(scales is not null && scales.equal(expected[name]).all().item<bool>(), $"{name}'s scales");
            foreach (var (name, experts) in projections.Where(p => p.Value is ExpertWeights))
            {
                var tensors = ExpertTensorsOf(name[..^".weight".Length], ((ExpertWeights)experts).Experts);
                Assert.Equal(tensors.SelectMany(tensor => format == Format.ChannelScale ? RowScales(checkpoint, tensor) : RowGroupScales(checkpoint, tensor)).ToArray(),
                    expected[name].data<float>().ToArray());
            }
        }
        finally
        {
            foreach (var tensor in expected.Values.Concat(rest.Values).Concat(recorder.HandedBack.Values.OfType<Tensor>())) tensor.Dispose();
        }
    }

    // keeps what the loader hands back, counting the projections allocated and not yet handed back, and checks each is
    // whole (as the model allocated whole loaded it) when it is handed back
    sealed class RecordingUnallocated(Dictionary<string, IFp8Storable> projections, Dictionary<string, TorchSharp.Modules.Parameter> whole) : IUnallocatedParameters
    {
        int _allocated;
        public Dictionary<string, Tensor?> HandedBack { get; } = [];
        public int MostAllocatedAtOnce { get; private set; }

        public long[]? ShapeOf(string parameter) => projections.TryGetValue(parameter, out var projection) ? projection.Shape : null;

        public void Allocate(string parameter)
        {
            projections[parameter].Allocate();
            MostAllocatedAtOnce = Math.Max(MostAllocatedAtOnce, ++_allocated);
        }

        public void Loaded(string parameter, Tensor? fp8Scales)
        {
            Assert.False(HandedBack.ContainsKey(parameter), $"{parameter} handed back twice");
            Assert.True(projections[parameter].Weight.equal(whole[parameter]).all().item<bool>(), $"{parameter} handed back before its rows were all in");
            HandedBack[parameter] = fp8Scales;
            _allocated--;
        }
    }

    /// The checkpoint tensors (Llama's names, without ".weight") a projection of the model fuses, in row order:
    /// "layers.0.self_attn.qkv_proj" is model.layers.0.self_attn.q_proj, k_proj and v_proj.
    internal static string[] CheckpointTensorsOf(string projection)
    {
        var (module, name) = ("model." + projection[..(projection.LastIndexOf('.') + 1)], projection[(projection.LastIndexOf('.') + 1)..]);
        string[] parts = name switch { "qkv_proj" => ["q_proj", "k_proj", "v_proj"], "gate_up_proj" => ["gate_proj", "up_proj"], _ => [name] };
        return [.. parts.Select(part => module + part)];
    }

    /// The scale of each row of an FP8 checkpoint tensor (without ".weight"): its weight_scale, one repeated per row
    /// where it is one for the tensor.
    internal static float[] RowScales(SafetensorsCheckpoint checkpoint, string tensor)
    {
        var rows = (int)checkpoint.Info(tensor + ".weight").Shape[0];
        using var scale = checkpoint.Read(tensor + ".weight_scale").to_type(ScalarType.Float32);
        var values = scale.data<float>().ToArray();
        return values.Length == 1 ? Enumerable.Repeat(values[0], rows).ToArray() : values;
    }

    /// The 128 x 128 block scales of an FP8 checkpoint tensor (without ".weight"), by row and group of 128 columns (a
    /// block's on each of its rows), row after row.
    internal static float[] RowGroupScales(SafetensorsCheckpoint checkpoint, string tensor)
    {
        var rows = checkpoint.Info(tensor + ".weight").Shape[0];
        using var scale = checkpoint.Read(tensor + ".weight_scale_inv").to_type(ScalarType.Float32);
        using var byRow = scale.repeat_interleave(128, 0).narrow(0, 0, rows).contiguous();
        return byRow.data<float>().ToArray();
    }

    [Fact]
    public void WhatCannotBeReadIsRefusedNamingIt()
    {
        using var dir = new TempDirectory();
        using var reference = new TempDirectory();
        Quantize(Fixtures.Dir("llama-gqa"), Format.BlockScaleInv, dir.Path, reference.Path);
        var config = JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!.AsObject();

        config["quantization_config"]!.AsObject().Remove("weight_block_size");
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        Assert.Contains("block size", Assert.Throws<CheckpointException>(() => ModelLoader.Load(dir.Path, "float32")).Message);

        config["quantization_config"] = new JsonObject
        {
            ["quant_method"] = "compressed-tensors", ["format"] = "pack-quantized",
            ["config_groups"] = new JsonObject { ["group_0"] = new JsonObject { ["weights"] = new JsonObject { ["num_bits"] = 4, ["type"] = "int" } } },
        };
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        Assert.Contains("'quantization_config.format'", Assert.Throws<ModelConfigException>(() => ModelConfig.Load(dir.Path)).Message);
        config["quantization_config"]!["format"] = "float-quantized";
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        Assert.Contains("int of 4 bits", Assert.Throws<ModelConfigException>(() => ModelConfig.Load(dir.Path)).Message);
        config["quantization_config"] = new JsonObject { ["quant_method"] = "bitsandbytes", ["load_in_4bit"] = true };
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        Assert.Contains("bitsandbytes", Assert.Throws<ModelConfigException>(() => ModelConfig.Load(dir.Path)).Message);
        config["quantization_config"] = new JsonObject { ["quant_method"] = "gptq", ["bits"] = 3 };
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        Assert.Contains("'quantization_config.bits'", Assert.Throws<ModelConfigException>(() => ModelConfig.Load(dir.Path)).Message);
    }

    [Fact]
    public void AnFp8WeightWithoutItsScaleIsRefusedBeforeLoading()
    {
        using var dir = new TempDirectory();
        using var reference = new TempDirectory();
        Quantize(Fixtures.Dir("llama-gqa"), Format.ChannelScale, dir.Path, reference.Path, dropScaleOf: "model.layers.1.mlp.down_proj.weight");
        var error = Assert.Throws<CheckpointException>(() => ModelLoader.Load(dir.Path, "float32"));
        Assert.Contains("model.layers.1.mlp.down_proj.weight", error.Message);
        Assert.Contains("F8_E4M3", error.Message);
    }

    /// vLLM's --quantization names the checkpoint's method (or vLLM's marlin name for it): the engine then serves the
    /// checkpoint as without the flag; another method, or any but fp8 on an unquantized checkpoint (fp8 off a GPU), fails the start naming it.
    [Fact]
    public async Task TheQuantizationFlagMustNameTheCheckpointsMethod()
    {
        using var awq = new TempDirectory();
        using var reference = new TempDirectory();
        Quantize(Fixtures.Dir("llama-gqa"), Format.Awq, awq.Path, reference.Path);
        var prompt = Fixtures.Reference("llama-gqa").Prompts[0];
        await using (var plain = new LlmEngine(new EngineOptions { Model = awq.Path, Dtype = "float32" }))
        await using (var flagged = new LlmEngine(new EngineOptions { Model = awq.Path, Dtype = "float32", Quantization = "awq_marlin" }))
        {
            await Task.WhenAll(plain.WaitUntilReadyAsync(CancellationToken.None), flagged.WaitUntilReadyAsync(CancellationToken.None));
            Assert.Equal((await CollectAsync(plain, Greedy(prompt.InputIds, 8))).Tokens(), (await CollectAsync(flagged, Greedy(prompt.InputIds, 8))).Tokens());
        }
        foreach (var (model, flag, message) in new[]
        {
            (awq.Path, "gptq", "--quantization gptq does not match the checkpoint's quantization_config.quant_method awq"),
            (Fixtures.Dir("llama-gqa"), "awq", "--quantization awq: the checkpoint is not quantized (config.json has no quantization_config)"),
            // fp8 on an unquantized checkpoint quantizes it as it loads (Cuda/Fp8ProductsTests), on a GPU only
            (Fixtures.Dir("llama-gqa"), "fp8", "--quantization fp8: FP8 weights need a CUDA GPU (the model is on cpu)"),
            (awq.Path, "bitsandbytes", "--quantization bitsandbytes is not served (accepted: fp8, compressed-tensors, awq, awq_marlin"),
        })
        {
            await using var engine = new LlmEngine(new EngineOptions { Model = model, Dtype = "float32", Quantization = flag });
            var error = await Assert.ThrowsAsync<ModelLoadException>(() => engine.WaitUntilReadyAsync(CancellationToken.None));
            Assert.Contains(message, error.Message);
        }
    }

    static float[] LastLogits(LoadedModel model, int[] prompt)
    {
        using var cache = model.CreateKVCache(numBlocks: 16, blockSize: 16);
        var runner = new PagedRunner(model, cache);
        var sequence = runner.Add(prompt);
        return runner.Step([(sequence, prompt.Length)])[0];
    }

    /// Writes the fixture with every decoder projection stored as e4m3 with its scales (to quantized), and the same model
    /// in float32 holding the values those bytes and scales stand for (to reference).
    /// leaveIn16Bits: a projection's weight stored as it is (on the ignore list of a compressed-tensors config).
    internal static void Quantize(string fixture, Format format, string quantized, string reference, string? dropScaleOf = null,
        string? leaveIn16Bits = null)
    {
        foreach (var file in Directory.GetFiles(fixture).Where(f => !f.EndsWith(".safetensors", StringComparison.Ordinal)))
        {
            File.Copy(file, Path.Combine(quantized, Path.GetFileName(file)));
            File.Copy(file, Path.Combine(reference, Path.GetFileName(file)));
        }
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "config.json")))!.AsObject();
        config["quantization_config"] = format switch
        {
            Format.Awq => new JsonObject { ["quant_method"] = "awq", ["bits"] = 4, ["group_size"] = 16, ["zero_point"] = true, ["version"] = "gemm" },
            Format.Gptq or Format.GptqV2 => new JsonObject
            {
                ["quant_method"] = "gptq", ["bits"] = 4, ["group_size"] = 16, ["desc_act"] = false, ["sym"] = false,
                ["checkpoint_format"] = format == Format.GptqV2 ? "gptq_v2" : "gptq",
            },
            Format.GptqActOrder8Bit => new JsonObject { ["quant_method"] = "gptq", ["bits"] = 8, ["group_size"] = 16, ["desc_act"] = true, ["sym"] = true },
            _ => Fp8Config(format),
        };
        if (leaveIn16Bits is not null && config["quantization_config"]!["ignore"] is JsonArray ignore)
            ignore.Add(leaveIn16Bits[..^".weight".Length]);
        File.WriteAllText(Path.Combine(quantized, "config.json"), config.ToJsonString());

        using var checkpoint = SafetensorsCheckpoint.Open(fixture);
        if (format is Format.Awq or Format.Gptq or Format.GptqV2 or Format.GptqActOrder8Bit)
        {
            PackIntegers(checkpoint, format, quantized, reference);
            return;
        }
        var (stored, plain, float8) = (new Dictionary<string, Tensor>(), new Dictionary<string, Tensor>(), new HashSet<string>());
        foreach (var name in checkpoint.TensorNames)
        {
            var weight = checkpoint.Read(name);
            if (!name.Contains("_proj.weight", StringComparison.Ordinal) || name == leaveIn16Bits)
            {
                (stored[name], plain[name]) = (weight, weight);
                continue;
            }
            var scale = Scale(weight, format);
            var bytes = Encode(weight / Broadcast(scale, weight.shape, format));
            (stored[name], plain[name]) = (bytes, DecodeAll(bytes) * Broadcast(scale, weight.shape, format));
            float8.Add(name);
            if (name != dropScaleOf) stored[name + (BlockOf(format) is null ? "_scale" : "_scale_inv")] = scale;
        }
        var path = Path.Combine(quantized, "model.safetensors");
        SafetensorsWriter.Write(path, stored);
        MarkFloat8(path, float8);
        SafetensorsWriter.Write(Path.Combine(reference, "model.safetensors"), plain);
    }

    static JsonObject Fp8Config(Format format) => BlockOf(format) is var (blockRows, blockColumns)
            ? new JsonObject { ["quant_method"] = "fp8", ["fmt"] = "e4m3", ["activation_scheme"] = "dynamic", ["weight_block_size"] = new JsonArray(blockRows, blockColumns) }
            : new JsonObject
            {
                ["quant_method"] = "compressed-tensors", ["format"] = "float-quantized", ["ignore"] = new JsonArray("lm_head"),
                ["config_groups"] = new JsonObject
                {
                    ["group_0"] = new JsonObject
                    {
                        ["targets"] = new JsonArray("Linear"),
                        ["weights"] = new JsonObject { ["num_bits"] = 8, ["type"] = "float", ["strategy"] = format == Format.ChannelScale ? "channel" : "tensor" },
                    },
                },
            };

    /// Each projection W (out, in) as integers q in [0, 2^bits) with a scale s and zero point z per (group of input
    /// columns, output): W' = (q - z) s, written packed as the format packs them, and W' in float32 for the reference.
    static void PackIntegers(SafetensorsCheckpoint checkpoint, Format format, string quantized, string reference)
    {
        var (bits, groupSize) = (format == Format.GptqActOrder8Bit ? 8 : 4, 16);
        var pack = 32 / bits;
        var (stored, plain) = (new Dictionary<string, Tensor>(), new Dictionary<string, Tensor>());
        foreach (var name in checkpoint.TensorNames)
        {
            var weight = checkpoint.Read(name);
            if (!name.Contains("_proj.weight", StringComparison.Ordinal))
            {
                (stored[name], plain[name]) = (weight, weight);
                continue;
            }
            var w = weight.data<float>().ToArray();
            var (outputs, inputs) = ((int)weight.shape[0], (int)weight.shape[1]);
            var groups = inputs / groupSize;
            // act-order: input column i belongs to group g_idx[i], here a fixed shuffle of the plain assignment
            var groupOf = Enumerable.Range(0, inputs).Select(i => format == Format.GptqActOrder8Bit ? (i * 7 + 3) % inputs / groupSize : i / groupSize).ToArray();
            var (q, z, s) = (new int[inputs, outputs], new int[groups, outputs], new float[groups, outputs]);
            var max = (1 << bits) - 1;
            for (var g = 0; g < groups; g++)
                for (var o = 0; o < outputs; o++)
                {
                    var columns = Enumerable.Range(0, inputs).Where(i => groupOf[i] == g).ToArray();
                    var (lo, hi) = (Math.Min(0f, columns.Min(i => w[o * inputs + i])), Math.Max(0f, columns.Max(i => w[o * inputs + i])));
                    s[g, o] = (float)(Half)((hi - lo) / max);       // scales are stored as float16
                    // gptq's first format cannot store a zero point of 0 (it stores z - 1)
                    z[g, o] = Math.Clamp((int)Math.Round(-lo / s[g, o]), format is Format.Gptq or Format.GptqActOrder8Bit ? 1 : 0, max);
                    foreach (var i in columns) q[i, o] = Math.Clamp((int)Math.Round(w[o * inputs + i] / s[g, o]) + z[g, o], 0, max);
                }
            var dequantized = new float[outputs * inputs];
            for (var o = 0; o < outputs; o++)
                for (var i = 0; i < inputs; i++)
                    dequantized[o * inputs + i] = (q[i, o] - z[groupOf[i], o]) * s[groupOf[i], o];
            plain[name] = tensor(dequantized).view(outputs, inputs);
            var prefix = name[..^".weight".Length];
            var zeroOffset = format == Format.Gptq || format == Format.GptqActOrder8Bit ? -1 : 0;   // gptq's first format: zero - 1
            if (format == Format.Awq)
            {
                stored[prefix + ".qweight"] = PackAlongOutputs(q, inputs, outputs, bits, awqOrder: true);
                stored[prefix + ".qzeros"] = PackAlongOutputs(z, groups, outputs, bits, awqOrder: true);
            }
            else
            {
                var packedInputs = new int[inputs / pack, outputs];
                for (var i = 0; i < inputs; i++)
                    for (var o = 0; o < outputs; o++)
                        packedInputs[i / pack, o] |= q[i, o] << (bits * (i % pack));
                stored[prefix + ".qweight"] = tensor(packedInputs.Cast<int>().ToArray()).view(inputs / pack, outputs);
                var zeros = new int[groups, outputs];
                for (var g = 0; g < groups; g++)
                    for (var o = 0; o < outputs; o++)
                        zeros[g, o] = (z[g, o] + zeroOffset) & max;
                stored[prefix + ".qzeros"] = PackAlongOutputs(zeros, groups, outputs, bits, awqOrder: false);
                stored[prefix + ".g_idx"] = tensor(groupOf);
            }
            stored[prefix + ".scales"] = tensor(s.Cast<float>().ToArray()).view(groups, outputs).to_type(ScalarType.Float16);
        }
        SafetensorsWriter.Write(Path.Combine(quantized, "model.safetensors"), stored);
        SafetensorsWriter.Write(Path.Combine(reference, "model.safetensors"), plain);
    }

    /// values (rows, outputs) packed 32 / bits outputs to an int32, lowest bits first; AutoAWQ puts output 8j + r at
    /// nibble [0, 4, 1, 5, 2, 6, 3, 7][r].
    static Tensor PackAlongOutputs(int[,] values, int rows, int outputs, int bits, bool awqOrder)
    {
        int[] awq = [0, 4, 1, 5, 2, 6, 3, 7];
        var pack = 32 / bits;
        var packed = new int[rows, outputs / pack];
        for (var r = 0; r < rows; r++)
            for (var o = 0; o < outputs; o++)
            {
                var slot = awqOrder ? awq[o % pack] : o % pack;
                packed[r, o / pack] |= values[r, o] << (bits * slot);
            }
        return tensor(packed.Cast<int>().ToArray()).view(rows, outputs / pack);
    }

    // a block format's rows and columns of one scale
    static (int Rows, int Columns)? BlockOf(Format format) => format switch
    {
        Format.BlockScaleInv => (32, 48),
        Format.Block128ScaleInv => (128, 128),
        _ => null,
    };

    // the largest magnitude of each scale's part over e4m3's largest value, 448
    static Tensor Scale(Tensor weight, Format format) => format switch
    {
        Format.TensorScale => weight.abs().max().view(1) / 448,
        Format.ChannelScale => weight.abs().amax([1], keepdim: true) / 448,
        _ => BlockMax(weight, BlockOf(format)!.Value) / 448,
    };

    static Tensor BlockMax(Tensor weight, (int Rows, int Columns) block)
    {
        var (rows, columns) = (weight.shape[0], weight.shape[1]);
        var result = zeros((rows + block.Rows - 1) / block.Rows, (columns + block.Columns - 1) / block.Columns);
        for (long i = 0; i < result.shape[0]; i++)
            for (long j = 0; j < result.shape[1]; j++)
                result[i, j] = weight.narrow(0, i * block.Rows, Math.Min(block.Rows, rows - i * block.Rows))
                    .narrow(1, j * block.Columns, Math.Min(block.Columns, columns - j * block.Columns)).abs().max();
        return result;
    }

    static Tensor Broadcast(Tensor scale, long[] shape, Format format) => BlockOf(format) is var (blockRows, blockColumns)
        ? scale.repeat_interleave(blockRows, 0).narrow(0, 0, shape[0]).repeat_interleave(blockColumns, 1).narrow(1, 0, shape[1])
        : scale;

    /// Writes llama-gqa's config and tokenizer at a width of whole 128 x 128 blocks, with random weights (seeded): by
    /// default hidden 256, 4 heads of 64 and 2 KV heads (k and v of 128 rows), intermediate 512, llama-gqa's 2 layers;
    /// the fixture to quantize as Format.Block128ScaleInv for the FP8 products that serve such blocks.
    internal static void WideLlama(string directory, int hidden = 256, int intermediate = 512, int layers = 2)
    {
        const int kvRows = 128;
        var fixture = Fixtures.Dir("llama-gqa");
        foreach (var file in Directory.GetFiles(fixture).Where(f => !f.EndsWith(".safetensors", StringComparison.Ordinal) && !f.EndsWith("config.json", StringComparison.Ordinal)))
            File.Copy(file, Path.Combine(directory, Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "config.json")))!.AsObject();
        (config["hidden_size"], config["intermediate_size"], config["num_attention_heads"], config["head_dim"]) = (hidden, intermediate, hidden / 64, 64);
        config["num_hidden_layers"] = layers;
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJsonString());
        using var checkpoint = SafetensorsCheckpoint.Open(fixture);
        var generator = new Generator(seed: 11);
        var tensors = new Dictionary<string, Tensor>();
        // llama-gqa's layer 0 tensors repeated for each layer
        var names = checkpoint.TensorNames.Where(name => !name.StartsWith("model.layers.", StringComparison.Ordinal))
            .Concat(Enumerable.Range(0, layers).SelectMany(layer => checkpoint.TensorNames.Where(name => name.StartsWith("model.layers.0.", StringComparison.Ordinal))
                .Select(name => $"model.layers.{layer}." + name["model.layers.0.".Length..])));
        foreach (var name in names)
        {
            var fixtureName = System.Text.RegularExpressions.Regex.Replace(name, @"^model\.layers\.\d+\.", "model.layers.0.");
            var shape = checkpoint.Info(fixtureName).Shape.Select(size => size switch { 64 => hidden, 16 => kvRows, 176 => intermediate, _ => size }).ToArray();
            tensors[name] = name.EndsWith("norm.weight", StringComparison.Ordinal)
                ? 1 + randn(shape, generator: generator) * 0.1
                : randn(shape, generator: generator) * 0.05;
        }
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"), tensors);
    }

    /// A Qwen3-MoE checkpoint (Qwen3-30B-A3B's family) of whole 128 x 128 blocks with random weights (seeded) and the
    /// llama-gqa fixture's tokenizer: hidden 256, 4 heads of 64 and 2 KV heads, every layer a mixture of experts experts
    /// of width rows each (gate, up; down width columns), top 2 normalized; the fixture to quantize (every _proj tensor,
    /// the experts' too) for FP8 experts.
    internal static void WideQwen3Moe(string directory, int hidden = 256, int experts = 4, int width = 128, int layers = 2)
    {
        const int heads = 4, kvHeads = 2, headDim = 64, vocab = 512;
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("Qwen3MoeForCausalLM"), ["model_type"] = "qwen3_moe", ["hidden_size"] = hidden,
            ["num_hidden_layers"] = layers, ["num_attention_heads"] = heads, ["num_key_value_heads"] = kvHeads, ["head_dim"] = headDim,
            ["vocab_size"] = vocab, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 1000000.0, ["max_position_embeddings"] = 256,
            ["hidden_act"] = "silu", ["tie_word_embeddings"] = false, ["torch_dtype"] = "float32", ["bos_token_id"] = 1, ["eos_token_id"] = 2,
            ["num_experts"] = experts, ["num_experts_per_tok"] = 2, ["moe_intermediate_size"] = width, ["intermediate_size"] = 2 * width,
            ["norm_topk_prob"] = true, ["decoder_sparse_step"] = 1, ["mlp_only_layers"] = new JsonArray(),
        };
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJsonString());
        Architectures.ReferenceChecks.CopyTokenizer(directory);
        var generator = new Generator(seed: 13);
        Tensor Random(params long[] shape) => randn(shape, generator: generator) * 0.05;
        Tensor Norm(long size) => 1 + randn([size], generator: generator) * 0.1;
        var tensors = new Dictionary<string, Tensor>
        {
            ["model.embed_tokens.weight"] = Random(vocab, hidden), ["model.norm.weight"] = Norm(hidden), ["lm_head.weight"] = Random(vocab, hidden),
        };
        for (var layer = 0; layer < layers; layer++)
        {
            var p = $"model.layers.{layer}.";
            (tensors[p + "self_attn.q_proj.weight"], tensors[p + "self_attn.o_proj.weight"]) = (Random(heads * headDim, hidden), Random(hidden, heads * headDim));
            (tensors[p + "self_attn.k_proj.weight"], tensors[p + "self_attn.v_proj.weight"]) = (Random(kvHeads * headDim, hidden), Random(kvHeads * headDim, hidden));
            (tensors[p + "self_attn.q_norm.weight"], tensors[p + "self_attn.k_norm.weight"]) = (Norm(headDim), Norm(headDim));
            (tensors[p + "input_layernorm.weight"], tensors[p + "post_attention_layernorm.weight"]) = (Norm(hidden), Norm(hidden));
            tensors[p + "mlp.gate.weight"] = Random(experts, hidden) * 20;   // a router with opinions
            for (var e = 0; e < experts; e++)
            {
                (tensors[$"{p}mlp.experts.{e}.gate_proj.weight"], tensors[$"{p}mlp.experts.{e}.up_proj.weight"]) = (Random(width, hidden), Random(width, hidden));
                tensors[$"{p}mlp.experts.{e}.down_proj.weight"] = Random(hidden, width);
            }
        }
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"), tensors);
    }

    /// The checkpoint tensors (without ".weight") a layer's experts of one kind stack, in row order: for
    /// "layers.0.mlp.experts_gate_up" each expert's gate_proj then up_proj, for "layers.0.mlp.experts_down" its down_proj.
    internal static string[] ExpertTensorsOf(string experts, int count)
    {
        var module = "model." + experts[..(experts.LastIndexOf('.') + 1)];
        string[] parts = experts.EndsWith("experts_gate_up", StringComparison.Ordinal) ? ["gate_proj", "up_proj"] : ["down_proj"];
        return [.. Enumerable.Range(0, count).SelectMany(e => parts.Select(part => $"{module}experts.{e}.{part}"))];
    }

    // each value to the byte of the nearest e4m3 number
    static Tensor Encode(Tensor values) => tensor(values.data<float>().ToArray().Select(E4M3.Encode).ToArray(), ScalarType.Byte).view(values.shape);

    static Tensor DecodeAll(Tensor bytes) =>
        tensor(E4M3.Decode(bytes.data<byte>().ToArray())).view(bytes.shape);

    /// Rewrites the safetensors header so that the named U8 tensors are F8_E4M3 (the writer knows no FP8 type).
    static void MarkFloat8(string path, IReadOnlySet<string> names)
    {
        var file = File.ReadAllBytes(path);
        var length = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(file, 8, length))!.AsObject();
        foreach (var name in names) header[name]!["dtype"] = "F8_E4M3";
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (json.Length + 7) / 8 * 8;
        using var stream = File.Create(path);
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)padded);
        stream.Write(prefix);
        stream.Write(json);
        stream.Write(Enumerable.Repeat((byte)' ', padded - json.Length).ToArray());
        stream.Write(file.AsSpan(8 + length));
    }
}
