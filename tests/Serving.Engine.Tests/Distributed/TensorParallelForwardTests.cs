using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Tests.Architectures;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Distributed;

/// Sharding as a transformation: every fixture split over N in-process ranks (N partial forwards whose partial sums
/// the in-process all-reduce adds, logits gathered over the vocabulary) gives the unsharded logits within 1e-5 in
/// float32, in prefill and in decode, including the replicated-KV-head cases (llama-gqa at 4 ranks: 2 KV heads;
/// llama-sp-mqa at 2 and 4: 1 KV head) and qwen3's head_dim 16 with per-head q/k norms and tied embeddings.
public sealed class TensorParallelForwardTests(ITestOutputHelper output)
{
    public static TheoryData<string, int> Cases()
    {
        var cases = new TheoryData<string, int>();
        foreach (var fixture in Fixtures.Models)
            foreach (var size in new[] { 2, 4 })
                cases.Add(fixture, size);
        return cases;
    }

    [Theory, MemberData(nameof(Cases))]
    public void ShardedLogitsEqualTheWholeModels(string fixture, int size)
    {
        var prompts = Fixtures.Reference(fixture).Prompts;
        using var whole = ModelLoader.Load(Fixtures.Dir(fixture), "float32");
        using var sharded = ModelLoader.Load(Fixtures.Dir(fixture), "float32", tensorParallelSize: size);
        Assert.Equal(size, sharded.TensorParallelSize);
        using var wholeCache = whole.CreateKVCache(numBlocks: 64, blockSize: 4);
        using var shardedCache = sharded.CreateKVCache(numBlocks: 64, blockSize: 4);
        var (wholeRunner, shardedRunner) = (new PagedRunner(whole, wholeCache), new PagedRunner(sharded, shardedCache));
        var maxError = 0.0;
        foreach (var prompt in prompts)
        {
            var (a, b) = (wholeRunner.Add(prompt.InputIds), shardedRunner.Add(prompt.InputIds));
            // prefill in chunks of 3, then 4 decode steps teacher-forced along the reference's greedy tokens
            while (wholeRunner.Pending(a) > 0)
            {
                var n = Math.Min(3, wholeRunner.Pending(a));
                maxError = Math.Max(maxError, MaxAbsDifference(wholeRunner.Step([(a, n)])[0], shardedRunner.Step([(b, n)])[0]));
            }
            foreach (var token in prompt.Greedy16.Take(4))
            {
                wholeRunner.Append(a, token);
                shardedRunner.Append(b, token);
                maxError = Math.Max(maxError, MaxAbsDifference(wholeRunner.Step([(a, 1)])[0], shardedRunner.Step([(b, 1)])[0]));
            }
        }
        output.WriteLine($"{fixture} over {size} ranks: max |sharded - whole| = {maxError:E2}");
        Assert.True(maxError <= 1e-5, $"max error {maxError}");
    }

    [Theory, MemberData(nameof(Cases))]
    public void ShardedGreedyDecodingMatchesTransformers(string fixture, int size)
    {
        var reference = Fixtures.Reference(fixture);
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "float32", tensorParallelSize: size);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        foreach (var prompt in reference.Prompts)
        {
            var runner = new PagedRunner(model, cache);
            Assert.Equal(prompt.Greedy16, runner.Greedy(runner.Add(prompt.InputIds), 16));
        }
    }

    /// Each rank's pool holds its own KV heads: G / N of them, or one replicated head when N exceeds G.
    [Theory]
    [InlineData("llama-mha", 2, 4)]
    [InlineData("llama-mha", 4, 2)]
    [InlineData("llama-gqa", 2, 1)]
    [InlineData("llama-gqa", 4, 1)]
    [InlineData("llama-sp-mqa", 4, 1)]
    public void EachRankPoolHoldsItsKVHeads(string fixture, int size, int kvHeadsPerRank)
    {
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "float32", tensorParallelSize: size);
        using var cache = model.CreateKVCache(numBlocks: 8, blockSize: 16);
        var config = model.Config;
        Assert.Equal(kvHeadsPerRank, model.KVCacheSpec().NumKVHeads);
        Assert.Equal(2L * config.NumHiddenLayers * kvHeadsPerRank * config.HeadDim * 4, model.KVCacheSpec().BytesPerToken);
        Assert.Equal(size - 1, cache.RankPools.Count);
        Assert.All(cache.RankPools.Prepend(cache), pool =>
        {
            Assert.Equal(kvHeadsPerRank, pool.Spec.NumKVHeads);
            Assert.Equal(8, pool.NumBlocks);
        });
    }

    /// A rank that fails in the middle of a step (here: a peer handed a pool that does not fit it, while rank 0 goes on
    /// into the first all-reduce) must not leave the others waiting forever: the group is aborted, the peer's failure
    /// is the one thrown, and the group is rebuilt, so the next step over a good pool gives the whole model's logits.
    [Fact]
    public void ARankThatFailsMidStepAbortsTheStepAndTheGroupRecovers()
    {
        using var whole = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32");
        using var sharded = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32", tensorParallelSize: 2);
        var rankPool = sharded.KVCacheSpec();
        using var broken = new Serving.Engine.KVCache.PagedKVCache(rankPool, 8, 16, CPU)
        {
            RankPools = [new Serving.Engine.KVCache.PagedKVCache(rankPool with { NumKVHeads = 2 }, 8, 16, CPU)],
        };
        var inputs = StepInputs.Build([new StepSequence([1, 2, 3, 4], 0, 4, [0])], 16);
        var error = Assert.Throws<ArgumentException>(() => Run(sharded, inputs, broken));
        Assert.Contains("does not fit", error.Message);

        using var good = sharded.CreateKVCache(8, 16);
        using var wholeCache = whole.CreateKVCache(8, 16);
        Assert.True(MaxAbsDifference(Run(whole, inputs, wholeCache), Run(sharded, inputs, good)) <= 1e-5);
    }

    static float[] Run(LoadedModel model, StepInputs inputs, Serving.Engine.KVCache.PagedKVCache cache)
    {
        using var scope = NewDisposeScope();
        return model.Forward(inputs, cache).data<float>().ToArray();
    }

    /// The parts no fixture has: Phi-3's fused qkv_proj / gate_up_proj (split by the kinds of their rows), biases on
    /// every projection (column-parallel ones split, o_proj's and down_proj's added by rank 0 alone) and a vocabulary
    /// of 510 that 4 ranks do not divide (the last rank's rows padded with zeros, the padded logits dropped), and Command
    /// R+'s q/k norms with a weight per head (each rank holds its heads' rows: at 4 ranks the 2 KV heads' are replicated), and
    /// Apertus's MLP without a gate (each rank its rows of up_proj, its xIELU parameters whole), and StarCoder2's (up_proj's
    /// bias split with its rows, the LayerNorms' biases whole on every rank).
    [Theory]
    [InlineData("phi3 layout", 2)]
    [InlineData("phi3 layout", 4)]
    [InlineData("biases", 2)]
    [InlineData("biases", 4)]
    [InlineData("vocabulary 510", 4)]
    [InlineData("command r+", 2)]
    [InlineData("command r+", 4)]
    [InlineData("apertus", 2)]
    [InlineData("apertus", 4)]
    [InlineData("starcoder2", 2)]
    public void CheckpointVariantsShardedEqualTheWholeModel(string variant, int size)
    {
        using var dir = variant is "command r+" or "apertus" or "starcoder2" ? new TempDirectory() : TempDirectory.CopyOf("llama-gqa");
        switch (variant)
        {
            case "phi3 layout": Phi3LayoutTests.RewriteAsPhi3(dir.Path, ModelConfig.Load(dir.Path)); break;
            case "biases": AddBiases(dir.Path, ModelConfig.Load(dir.Path)); break;
            case "command r+": LlamaVariantsTests.Write(LlamaVariantsTests.Family.CommandRPlus, dir.Path); break;
            case "apertus": LlamaVariantsTests.Write(LlamaVariantsTests.Family.Apertus, dir.Path); break;
            case "starcoder2": LlamaVariantsTests.Write(LlamaVariantsTests.Family.Starcoder2, dir.Path); break;
            default: CutVocabulary(dir.Path, 510); break;
        }
        using var whole = ModelLoader.Load(dir.Path, "float32");
        using var sharded = ModelLoader.Load(dir.Path, "float32", tensorParallelSize: size);
        using var wholeCache = whole.CreateKVCache(numBlocks: 16, blockSize: 4);
        using var shardedCache = sharded.CreateKVCache(numBlocks: 16, blockSize: 4);
        var prompt = Enumerable.Range(3, 11).ToArray();
        var (a, b) = (new PagedRunner(whole, wholeCache), new PagedRunner(sharded, shardedCache));
        var (wholeLogits, shardedLogits) = (a.Step([(a.Add(prompt), prompt.Length)])[0], b.Step([(b.Add(prompt), prompt.Length)])[0]);
        Assert.Equal(whole.Config.VocabSize, shardedLogits.Length);
        var error = MaxAbsDifference(wholeLogits, shardedLogits);
        output.WriteLine($"{variant} over {size} ranks: max |sharded - whole| = {error:E2}");
        Assert.True(error <= 1e-5, $"max error {error}");
        Assert.Equal(a.Greedy(a.Add(prompt), 8), b.Greedy(b.Add(prompt), 8));
    }

    static void AddBiases(string directory, ModelConfig config)
    {
        EditConfig(directory, json => (json["attention_bias"], json["mlp_bias"]) = (true, true));
        RewriteTensors(directory, tensors =>
        {
            var generator = new Generator(11);
            Tensor Bias(long rows) => randn([rows], generator: generator) * 0.1;
            for (var layer = 0; layer < config.NumHiddenLayers; layer++)
            {
                var p = $"model.layers.{layer}.";
                foreach (var (name, rows) in new[] { ("self_attn.q_proj", config.QSize), ("self_attn.k_proj", config.KVSize),
                    ("self_attn.v_proj", config.KVSize), ("self_attn.o_proj", config.HiddenSize), ("mlp.gate_proj", config.IntermediateSize),
                    ("mlp.up_proj", config.IntermediateSize), ("mlp.down_proj", config.HiddenSize) })
                    tensors[$"{p}{name}.bias"] = Bias(rows);
            }
        });
    }

    static void CutVocabulary(string directory, int vocabSize)
    {
        EditConfig(directory, json => json["vocab_size"] = vocabSize);
        RewriteTensors(directory, tensors =>
        {
            foreach (var name in new[] { "model.embed_tokens.weight", "lm_head.weight" })
                tensors[name] = tensors[name].narrow(0, 0, vocabSize).contiguous();
        });
    }

    static void EditConfig(string directory, Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "config.json")))!.AsObject();
        edit(json);
        File.WriteAllText(Path.Combine(directory, "config.json"), json.ToJsonString());
    }

    static void RewriteTensors(string directory, Action<Dictionary<string, Tensor>> edit)
    {
        var tensors = new Dictionary<string, Tensor>();
        using (var checkpoint = SafetensorsCheckpoint.Open(directory))
        {
            foreach (var name in checkpoint.TensorNames) tensors[name] = checkpoint.Read(name);
        }
        edit(tensors);
        SafetensorsWriter.Write(Path.Combine(directory, SafetensorsCheckpoint.SingleFile), tensors);
    }

    static double MaxAbsDifference(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();
}
