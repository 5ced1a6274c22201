using Serving.Engine.Config;
using Serving.Engine.KVCache;
using Serving.Engine.Tests.Support;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.KVCache;

public sealed class KVCacheSizingTests
{
    /// The KV shape the engine derives from a fixture's config.json, in float32.
    static KVCacheSpec SpecOf(string fixture) => KVCacheSpec.For(ModelConfig.Load(Fixtures.Dir(fixture)), ScalarType.Float32);

    [Fact]
    public void BytesPerTokenIsKAndVForEveryLayerAndKVHead()
    {
        var spec = new KVCacheSpec(32, 8, 128, ScalarType.BFloat16);
        Assert.Equal(2L * 32 * 8 * 128 * 2, spec.BytesPerToken); // Llama-3-8B in bfloat16: 128 KiB per token
        Assert.Equal(spec.BytesPerToken * 16, spec.BytesPerBlock(16));
    }

    [Fact]
    public void GqaHoldsFourTimesAndMqaEightTimesTheTokensOfMhaInTheSameMemory()
    {
        const long memory = 1L << 20;
        var mha = KVCacheSizing.Plan(SpecOf("llama-mha"), memory, blockSize: 16);
        var gqa = KVCacheSizing.Plan(SpecOf("llama-gqa"), memory, blockSize: 16);
        var mqa = KVCacheSizing.Plan(SpecOf("llama-sp-mqa"), memory, blockSize: 16);

        // 2 layers x head_dim 8 x float32: 2*2*8*4 = 128 bytes per KV head per token.
        Assert.Equal(1024, mha.BytesPerToken);
        Assert.Equal(256, gqa.BytesPerToken);
        Assert.Equal(128, mqa.BytesPerToken);
        Assert.Equal(64, mha.NumBlocks);
        Assert.Equal(256, gqa.NumBlocks);
        Assert.Equal(512, mqa.NumBlocks);
        Assert.Equal(4 * mha.CapacityTokens, gqa.CapacityTokens);
        Assert.Equal(8 * mha.CapacityTokens, mqa.CapacityTokens);
        Assert.All(new[] { mha, gqa, mqa }, capacity => Assert.Equal(memory, capacity.TotalBytes));
    }

    /// Sequences count whole blocks; when every layer slides, a sequence holds its span and a step's tokens at most.
    [Fact]
    public void CapacityInSequencesCountsTheBlocksEachHolds()
    {
        var capacity = new KVCacheCapacity(NumBlocks: 100, BlockSize: 16, BytesPerToken: 256);
        Assert.Equal(1600, capacity.CapacityTokens);
        var manager = new KVCacheManager(capacity.NumBlocks, capacity.BlockSize, enablePrefixCaching: false);
        Assert.Equal(6, capacity.MaxConcurrentSequences(manager.MostBlocksHeld(256, 8192)));   // 16 blocks each
        Assert.Equal(5, capacity.MaxConcurrentSequences(manager.MostBlocksHeld(257, 8192)));   // 17 blocks each
        var sliding = new KVCacheManager(capacity.NumBlocks, capacity.BlockSize, enablePrefixCaching: false, attentionSpan: 100);
        Assert.Equal(8, capacity.MaxConcurrentSequences(sliding.MostBlocksHeld(4096, 64)));   // 100 + 64 tokens: 11 blocks, one straddled
    }

    [Fact]
    public void TheBlockOverrideWinsAndATooSmallBudgetIsRefused()
    {
        var spec = new KVCacheSpec(2, 2, 8, ScalarType.Float32);
        Assert.Equal(7, KVCacheSizing.Plan(spec, memoryBytes: 0, blockSize: 16, numBlocksOverride: 7).NumBlocks);
        var error = Assert.Throws<ArgumentException>(() => KVCacheSizing.Plan(spec, memoryBytes: 4095, blockSize: 16));
        Assert.Contains("4096 bytes", error.Message);
    }
}
