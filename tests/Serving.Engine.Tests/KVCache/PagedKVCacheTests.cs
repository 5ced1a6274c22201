using Serving.Engine.Config;
using Serving.Engine.KVCache;
using Serving.Engine.Tests.Support;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.KVCache;

public sealed class PagedKVCacheTests
{
    [Theory]
    [InlineData("llama-mha", 8, 1024)]   // 2 x 2 layers x 8 KV heads x 8 x 4 bytes
    [InlineData("llama-gqa", 2, 256)]
    [InlineData("llama-sp-mqa", 1, 128)]
    public void BytesPerTokenCountsOneHeadPerGroup(string fixture, int kvHeads, long bytes)
    {
        var config = ModelConfig.Load(Fixtures.Dir(fixture));
        Assert.Equal(kvHeads, config.NumKeyValueHeads);
        Assert.Equal(bytes, KVCacheSpec.For(config, ScalarType.Float32).BytesPerToken);
        Assert.Equal(bytes / 2, KVCacheSpec.For(config, ScalarType.BFloat16).BytesPerToken);
    }

    [Fact]
    public void ThePoolHasOneKAndVTensorPerLayerInTheRequestedLayout()
    {
        var config = ModelConfig.Load(Fixtures.Dir("llama-gqa"));
        using var cache = new PagedKVCache(KVCacheSpec.For(config, ScalarType.BFloat16), numBlocks: 10, blockSize: 4, CPU);
        Assert.Equal(40, cache.CapacityTokens);
        for (var layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            Assert.Equal([10L, 4, 2, 8], cache.Keys(layer).shape);
            Assert.Equal([10L, 4, 2, 8], cache.Values(layer).shape);
            Assert.Equal(ScalarType.BFloat16, cache.Values(layer).dtype);
        }
    }
}
