using Serving.Engine.Architectures;
using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Distributed;
using Serving.Engine.Weights;

namespace Serving.Engine.Tests.Distributed;

/// Which heads, KV heads, ffn columns and vocabulary rows each rank holds, and what a rank reads of each tensor.
public sealed class ModelShardTests
{
    [Fact]
    public void Llama3_70BOverEightGpusHoldsOneKVHeadPerRank()
    {
        var shard = ModelShard.Of(ModelPresets.Get("llama3-70b"), rank: 5, size: 8);
        Assert.Equal((8, 1, 3584, 16032), (shard.NumHeads, shard.NumKVHeads, shard.IntermediateSize, shard.VocabRows));
        Assert.Equal((40, 5, 5 * 16032), (shard.FirstHead, shard.FirstKVHead, shard.VocabStart));
        Assert.Equal((8, 1, 3584, 16032, 8192, 80), (shard.Config.NumAttentionHeads, shard.Config.NumKeyValueHeads,
            shard.Config.IntermediateSize, shard.Config.VocabSize, shard.Config.HiddenSize, shard.Config.NumHiddenLayers));
        Assert.Equal(1, shard.KVHeadReplicas);
    }

    /// vLLM's rule: with more ranks than KV heads each KV head is replicated on size / G consecutive ranks, the ones
    /// whose query heads use it (transformers' repeat_kv pairing: query head h reads KV head h / (H / G)).
    [Theory]
    [InlineData(2, new[] { 0, 1 })]
    [InlineData(4, new[] { 0, 0, 1, 1 })]
    [InlineData(8, new[] { 0, 0, 0, 0, 1, 1, 1, 1 })]
    public void KVHeadsAreReplicatedWhenRanksOutnumberThem(int size, int[] kvHeadOfRank)
    {
        var config = ModelConfig.Load(Fixtures.Dir("llama-gqa"));   // 8 heads, 2 KV heads
        var shards = Enumerable.Range(0, size).Select(rank => ModelShard.Of(config, rank, size)).ToArray();
        Assert.Equal(kvHeadOfRank, shards.Select(shard => shard.FirstKVHead));
        Assert.All(shards, shard => Assert.Equal(1, shard.NumKVHeads));
        Assert.All(shards, shard => Assert.Equal(size / 2, shard.KVHeadReplicas));
        foreach (var shard in shards)
            for (var head = shard.FirstHead; head < shard.FirstHead + shard.NumHeads; head++)
                Assert.Equal(shard.FirstKVHead, head / config.NumQueriesPerKV);
    }

    [Theory]
    [InlineData(3, "--tensor-parallel-size 3 does not divide the model's 8 query heads")]
    [InlineData(16, "--tensor-parallel-size 16 does not divide the model's 8 query heads")]
    [InlineData(0, "at least 1")]
    public void ASizeThatDoesNotDivideTheHeadsIsRefusedNamingBothNumbers(int size, string message)
    {
        var config = ModelConfig.Load(Fixtures.Dir("llama-gqa"));
        var error = Assert.Throws<ModelLoadException>(() => ModelShard.Check(config, size));
        Assert.Contains(message, error.Message);
        Assert.Contains(message, Assert.Throws<ModelLoadException>(() => ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32", tensorParallelSize: size)).Message);
    }

    [Fact]
    public void KVHeadsThatNeitherSplitNorReplicateEvenlyAreRefused()
    {
        var config = ModelConfig.Load(Fixtures.Dir("llama-gqa")) with { NumAttentionHeads = 12, NumKeyValueHeads = 6, HeadDim = 8 };
        var error = Assert.Throws<ModelLoadException>(() => ModelShard.Check(config, 4));
        Assert.Contains("--tensor-parallel-size 4 and the model's 6 KV heads", error.Message);
        var ffn = Assert.Throws<ModelLoadException>(() => ModelShard.Check(ModelConfig.Load(Fixtures.Dir("llama-gqa")) with { IntermediateSize = 130 }, 4));
        Assert.Contains("ffn width 130", ffn.Message);
    }

    /// Rank 1 of 4 of llama-mha (8 heads, 8 KV heads, head dim 8, ffn 128): two query and two KV heads of rows, a
    /// quarter of the ffn, the matching input columns of o_proj and down_proj, a quarter of the vocabulary.
    [Fact]
    public void ARankReadsItsRowsAndColumnsOfEachTensor()
    {
        var config = ModelConfig.Load(Fixtures.Dir("llama-mha"));
        var shard = ModelShard.Of(config, rank: 1, size: 4);
        var layout = ArchitectureRegistry.Layout(config).ToDictionary(binding => binding.CheckpointName);
        IReadOnlyList<ShardCopy> Copies(string name) => shard.Copies(layout[name]);
        var ffn = config.IntermediateSize / 4;
        Assert.Equal([new ShardCopy(new TensorSlice(0, 16, 16), 0)], Copies("model.layers.0.self_attn.q_proj.weight"));
        Assert.Equal([new ShardCopy(new TensorSlice(0, 16, 16), 16)], Copies("model.layers.0.self_attn.k_proj.weight"));
        Assert.Equal([new ShardCopy(new TensorSlice(0, 16, 16), 32)], Copies("model.layers.0.self_attn.v_proj.weight"));
        Assert.Equal([new ShardCopy(new TensorSlice(1, 16, 16), 0)], Copies("model.layers.0.self_attn.o_proj.weight"));
        Assert.Equal([new ShardCopy(new TensorSlice(0, ffn, ffn), 0)], Copies("model.layers.1.mlp.gate_proj.weight"));
        Assert.Equal([new ShardCopy(new TensorSlice(0, ffn, ffn), ffn)], Copies("model.layers.1.mlp.up_proj.weight"));
        Assert.Equal([new ShardCopy(new TensorSlice(1, ffn, ffn), 0)], Copies("model.layers.1.mlp.down_proj.weight"));
        Assert.Equal([new ShardCopy(new TensorSlice(0, 128, 128), 0)], Copies("model.embed_tokens.weight"));
        Assert.Equal([new ShardCopy(new TensorSlice(0, 0, 64), 0)], Copies("model.layers.0.input_layernorm.weight"));
    }

    /// Phi-3's fused qkv_proj: each kind of rows is split on its own and lands where the rank's fused parameter keeps it.
    [Fact]
    public void FusedTensorsAreSplitByTheKindsOfTheirRows()
    {
        var config = ModelConfig.Load(Fixtures.Dir("llama-gqa")) with { Architectures = ["Phi3ForCausalLM"], ModelType = "phi3" };
        var shard = ModelShard.Of(config, rank: 3, size: 4);      // query heads 6, 7; KV head 1 (replicated)
        var qkv = ArchitectureRegistry.Layout(config).Single(b => b.CheckpointName == "model.layers.0.self_attn.qkv_proj.weight");
        Assert.Equal([
            new ShardCopy(new TensorSlice(0, 48, 16), 0),         // q rows 48..63 (heads 6, 7)
            new ShardCopy(new TensorSlice(0, 64 + 8, 8), 16),     // k rows of KV head 1
            new ShardCopy(new TensorSlice(0, 80 + 8, 8), 24),     // v rows of KV head 1
        ], shard.Copies(qkv));
    }

    /// A vocabulary the ranks do not divide: each holds ceil(V / N) rows, the last one's tail is zero padding.
    [Fact]
    public void TheLastRankPadsAVocabularyTheRanksDoNotDivide()
    {
        var config = ModelConfig.Load(Fixtures.Dir("llama-gqa")) with { VocabSize = 510 };
        var last = ModelShard.Of(config, rank: 3, size: 4);
        Assert.Equal((128, 384, 126), (last.VocabRows, last.VocabStart, last.VocabRowsInUse));
        var embedding = ArchitectureRegistry.Layout(config).Single(b => b.ParameterName == "embed_tokens.weight");
        Assert.Equal([new ShardCopy(new TensorSlice(0, 384, 126), 0)], last.Copies(embedding));
        Assert.Equal(2, last.ZeroRows("embed_tokens.weight", 128));
    }

    [Fact]
    public void OneRankIsTheWholeModel()
    {
        var config = ModelConfig.Load(Fixtures.Dir("qwen3-gqa"));
        var whole = ModelShard.Whole(config);
        Assert.Same(config, whole.Config);
        Assert.All(ArchitectureRegistry.Layout(config), binding =>
            Assert.Equal([new ShardCopy(TensorSlice.Whole(binding.Shape), binding.RowOffset)], whole.Copies(binding)));
    }
}
