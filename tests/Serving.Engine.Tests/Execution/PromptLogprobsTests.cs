using Serving.Engine.Sampling;
using static Serving.Engine.Tests.Execution.EngineTestHelpers;

namespace Serving.Engine.Tests.Execution;

/// Prompt log-probabilities against transformers' numbers: a fixture prompt extended by its first greedy token
/// has, at that token, log_softmax of the reference's last-position logits (and rank 1: greedy took the argmax).
/// They come once per request, on its first event, whatever the step budget, prefix cache, n or preemption.
public sealed class PromptLogprobsTests
{
    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("llama-sp-mqa")]
    [InlineData("qwen3-gqa")]
    public async Task TheLastPromptTokenHasTheReferencesLogProbability(string fixture)
    {
        await using var engine = await StartAsync(fixture);
        foreach (var prompt in Fixtures.Reference(fixture).Prompts)
        {
            var next = prompt.Greedy16[0];
            var extended = prompt.InputIds.Append(next).ToArray();
            var completion = await CollectAsync(engine, WithPromptLogprobs(extended, topK: 2));
            var logprobs = Assert.Single(completion.Events, e => e.PromptLogprobs is not null).PromptLogprobs!;
            Assert.Equal(extended.Length, logprobs.Count);
            Assert.Null(logprobs[0]);
            Assert.All(logprobs.Skip(1), (entry, i) => Assert.Equal(extended[i + 1], entry!.TokenId));
            var last = logprobs[^1]!;
            Assert.Equal(ReferenceLogSoftmax(prompt.LastLogits)[next], last.Logprob, 1e-4);
            Assert.Equal(1, last.Rank);
            Assert.Equal(next, last.Top[0].TokenId);
        }
    }

    [Fact]
    public async Task TheyComeOnceAndAlikeUnderChunksThePrefixCacheSiblingsAndPreemption()
    {
        var prompt = Fixtures.Reference("llama-gqa").Prompts[1].InputIds;
        float[] alone;
        await using (var engine = await StartAsync())
            alone = Values(await CollectAsync(engine, WithPromptLogprobs(prompt, topK: 0)));

        await using var constrained = await StartAsync(configure: o => o with { MaxNumBatchedTokens = 5, NumGpuBlocksOverride = 6 });
        var requests = Enumerable.Range(0, 3).Select(_ => WithPromptLogprobs(prompt, topK: 0, n: 2, maxTokens: 16)).ToList();
        var completions = await Task.WhenAll(requests.Select(r => CollectAsync(constrained, r)));
        foreach (var completion in completions)
        {
            var values = Values(completion);
            Assert.Equal(alone.Length, values.Length);
            for (var i = 0; i < alone.Length; i++) Assert.Equal(alone[i], values[i], 1e-4f);
        }
        Assert.True(constrained.GetStats().Preemptions > 0, "the pool was meant to be too small for all at once");
        await WaitForIdleAsync(constrained);
    }

    static GenerationRequest WithPromptLogprobs(IReadOnlyList<int> prompt, int topK, int n = 1, int maxTokens = 1) =>
        Greedy(prompt, maxTokens) with { Sampling = SamplingParams.Greedy with { MaxTokens = maxTokens, IgnoreEos = true, N = n, PromptLogprobs = topK } };

    static float[] Values(Completion completion) =>
        [.. Assert.Single(completion.Events, e => e.PromptLogprobs is not null).PromptLogprobs!.Skip(1).Select(entry => entry!.Logprob)];

    static double[] ReferenceLogSoftmax(float[] logits)
    {
        var max = logits.Max();
        var logSum = Math.Log(logits.Sum(l => Math.Exp(l - max))) + max;
        return [.. logits.Select(l => l - logSum)];
    }
}
