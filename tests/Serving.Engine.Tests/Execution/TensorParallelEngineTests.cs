using Serving.Engine.Tests.Support;
using static Serving.Engine.Tests.Execution.EngineTestHelpers;

namespace Serving.Engine.Tests.Execution;

/// --tensor-parallel-size on CPU: the engine drives N in-process ranks; the scheduler, block tables and sampling stay
/// single and every rank holds its KV heads of the same blocks.
public class TensorParallelEngineTests
{
    [Theory]
    [InlineData("llama-gqa", 2)]
    [InlineData("qwen3-gqa", 2)]
    [InlineData("llama-sp-mqa", 4)]
    public async Task ATensorParallelEngineServesTheFixturesGreedyTokens(string fixture, int size)
    {
        await using var engine = await StartAsync(fixture, o => o with { TensorParallelSize = size });
        Assert.Equal(size, engine.Info.TensorParallelSize);
        var prompts = Fixtures.Reference(fixture).Prompts;
        // all prompts at once: steps batch prefills and decodes of several sequences over the ranks
        var completions = await Task.WhenAll(prompts.Select(prompt => CollectAsync(engine, Greedy(prompt.InputIds, 16))));
        for (var i = 0; i < prompts.Count; i++)
            Assert.Equal(prompts[i].Greedy16, completions[i].Tokens());
        await WaitForIdleAsync(engine);
    }

    /// KV bytes per token are per GPU: llama-mha's 8 KV heads split over 4 ranks hold 2 each (a quarter of the bytes);
    /// llama-gqa's 2 KV heads over 4 ranks are replicated, one per rank (half the bytes). The same memory per rank
    /// then holds that many more tokens.
    [Theory]
    [InlineData("llama-mha", 4, 4)]
    [InlineData("llama-gqa", 4, 2)]
    public async Task KVBytesPerTokenArePerGpu(string fixture, int size, int fewerBytes)
    {
        await using var whole = await StartAsync(fixture);
        await using var sharded = await StartAsync(fixture, o => o with { TensorParallelSize = size });
        Assert.Equal(whole.Info.KVBytesPerToken / fewerBytes, sharded.Info.KVBytesPerToken);
        Assert.Equal(whole.Info.KVCapacityTokens * fewerBytes, sharded.Info.KVCapacityTokens);
        Assert.Equal((whole.Info.NumAttentionHeads, whole.Info.NumKeyValueHeads), (sharded.Info.NumAttentionHeads, sharded.Info.NumKeyValueHeads));
    }

    [Fact]
    public async Task ASizeThatDoesNotDivideTheHeadsFailsTheStartNamingBothNumbers()
    {
        await using var engine = new LlmEngine(new EngineOptions { Model = Fixtures.Dir("llama-gqa"), TensorParallelSize = 3 });
        var error = await Assert.ThrowsAsync<ModelLoadException>(() => engine.WaitUntilReadyAsync(CancellationToken.None));
        Assert.Contains("--tensor-parallel-size 3 does not divide the model's 8 query heads", error.Message);
        Assert.Equal(EngineState.Faulted, engine.State);
    }

    /// A request that fails validation in the step (past the served length) fails on every rank alike, before any
    /// collective; the group is not aborted and the next request is served.
    [Fact]
    public async Task AFailedRequestLeavesTheRanksServing()
    {
        await using var engine = await StartAsync("llama-gqa", o => o with { TensorParallelSize = 2, MaxModelLen = 32 });
        await Assert.ThrowsAnyAsync<Exception>(() => CollectAsync(engine, Greedy(Enumerable.Range(1, 40).ToArray(), 4)));
        var prompt = Fixtures.Reference("llama-gqa").Prompts[0];
        Assert.Equal(prompt.Greedy16.Take(8), (await CollectAsync(engine, Greedy(prompt.InputIds, 8))).Tokens());
    }
}
