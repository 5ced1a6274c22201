using Serving.Engine.Tests.Support;
using static Serving.Engine.Tests.Execution.EngineTestHelpers;

namespace Serving.Engine.Tests.Execution;

/// Random-weight presets of named shapes start the engine without checkpoint files.
public class EnginePresetTests
{
    [Fact]
    public async Task APresetServesWithATokenizerFromElsewhere()
    {
        await using var engine = new LlmEngine(new EngineOptions
        {
            Model = "tiny-gqa", Tokenizer = Fixtures.Dir("llama-gqa"), Dtype = "float32", KVCacheMemoryBytes = 8 << 20,
        });
        await engine.WaitUntilReadyAsync(CancellationToken.None);
        Assert.Equal(2, engine.Info.NumKeyValueHeads);
        var completion = await CollectAsync(engine, Greedy([5, 6, 7], 8));
        Assert.Equal(8, completion.Tokens().Length);
    }

    [Fact]
    public async Task APresetWithoutATokenizerFailsToLoadSayingWhy()
    {
        await using var engine = new LlmEngine(new EngineOptions { Model = "tiny-gqa", Dtype = "float32" });
        var error = await Assert.ThrowsAsync<ModelLoadException>(() => engine.WaitUntilReadyAsync(CancellationToken.None));
        Assert.Contains("--tokenizer", error.Message);
        Assert.Equal(EngineState.Faulted, engine.State);
    }
}
