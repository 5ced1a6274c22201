using Serving.Engine.Execution;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Execution;

/// The warm-up step the KV budget is measured after (on CUDA) is an ordinary step the model and the sampler run: a
/// prompt of the step's token budget with as many sampled rows as a step can have, here on CPU.
public sealed class GpuMemoryProfilerTests
{
    [Theory]
    [InlineData(64, 1)]
    [InlineData(64, 40)]
    [InlineData(12, 12)]
    public void TheWarmUpStepSamplesAsManyRowsAsAStepCan(int numTokens, int sampledRows)
    {
        using var model = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32");
        var sampled = GpuMemoryProfiler.WarmUp(model, KVCacheDtype.Float32, numTokens, sampledRows, blockSize: 16);
        Assert.Equal(sampledRows, sampled.Length);
        Assert.All(sampled, token => Assert.InRange(token, 0, model.Config.VocabSize - 1));
    }

    [Fact]
    public void ThePoolingRunnersWarmUpReturnsEveryTokensHiddenStateWithoutAnLmHead()
    {
        using var model = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32", lmHead: false);
        Assert.False(model.HasLmHead);
        Assert.Empty(GpuMemoryProfiler.WarmUp(model, KVCacheDtype.Float32, numTokens: 48, sampledRows: 0, blockSize: 16));
        // a step that asks a model without an LM head for logits is refused, not answered with wrong ones
        using var cache = model.CreateKVCache(4, 16, KVCacheDtype.Float32);
        var error = Assert.Throws<InvalidOperationException>(() => model.Forward(StepInputs.Build([new StepSequence([1, 2, 3], 0, 3, [0])], 16), cache));
        Assert.Contains("LM head", error.Message);
    }
}
