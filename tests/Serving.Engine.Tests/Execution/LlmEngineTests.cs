using Serving.Engine.Sampling;
using Serving.Engine.Tests.Support;
using Xunit.Abstractions;
using static Serving.Engine.Tests.Execution.EngineTestHelpers;

namespace Serving.Engine.Tests.Execution;

public class LlmEngineTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("llama-mha")]
    [InlineData("llama-sp-mqa")]
    [InlineData("qwen3-gqa")]
    public async Task GreedyMatchesTheFixtures(string fixture)
    {
        await using var engine = await StartAsync(fixture);
        foreach (var prompt in Fixtures.Reference(fixture).Prompts)
        {
            var completion = await CollectAsync(engine, Greedy(prompt.InputIds, 16));
            Assert.Equal(prompt.Greedy16, completion.Tokens());
            Assert.Equal(FinishReason.Length, completion.Finish());
            Assert.Equal(new RequestUsage(prompt.InputIds.Length, 16, 0), completion.Usage);
        }
    }

    /// --kv-cache-dtype bfloat16 under a float32 model: the pool holds twice the tokens in the same bytes and the engine
    /// still serves; a dtype the pool cannot store fails the start naming the flag.
    [Fact]
    public async Task TheKVCacheDtypeIsTheCachesOwn()
    {
        await using var float32 = await StartAsync();
        await using var bfloat16 = await StartAsync(configure: o => o with { KVCacheDtype = "bfloat16" });
        Assert.Equal(("float32", "float32"), (float32.Info.Dtype, float32.Info.KVCacheDtype));
        Assert.Equal(("float32", "bfloat16"), (bfloat16.Info.Dtype, bfloat16.Info.KVCacheDtype));
        Assert.Equal(float32.Info.KVBytesPerToken / 2, bfloat16.Info.KVBytesPerToken);
        Assert.Equal(2 * float32.Info.KVCapacityTokens, bfloat16.Info.KVCapacityTokens);
        var prompt = Fixtures.Reference("llama-gqa").Prompts[0];
        Assert.Equal(8, (await CollectAsync(bfloat16, Greedy(prompt.InputIds, 8))).Tokens().Length);

        var error = await Assert.ThrowsAnyAsync<Exception>(() => StartAsync(configure: o => o with { KVCacheDtype = "int8" }));
        Assert.Contains("--kv-cache-dtype", error.Message);
    }

    public static TheoryData<string, int, int?> Settings => new()
    {
        { "default budgets", 8192, null },
        { "chunked prefill", 7, null },
        { "preemption", 64, 24 },
    };

    [Theory]
    [MemberData(nameof(Settings))]
    public async Task ConcurrentRequestsGiveWhatEachGivesAlone(string name, int maxBatchedTokens, int? numBlocks)
    {
        var requests = MixedWorkload(64, seed: 7);
        Dictionary<string, int[]> alone;
        await using (var solo = await StartAsync())
        {
            alone = [];
            foreach (var request in requests)
                alone[request.RequestId] = (await CollectAsync(solo, request)).Tokens();
        }
        await using var engine = await StartAsync(configure: o => o with
        {
            MaxNumBatchedTokens = maxBatchedTokens,
            NumGpuBlocksOverride = numBlocks,
            BlockSize = 4,
        });
        var together = await Task.WhenAll(requests.Select(r => CollectAsync(engine, r)));
        for (var i = 0; i < requests.Count; i++)
            Assert.Equal(alone[requests[i].RequestId], together[i].Tokens());
        await WaitForIdleAsync(engine);
        var stats = engine.GetStats();
        output.WriteLine($"{name}: {stats.Steps} steps, {stats.Preemptions} preemptions, " +
                         $"{stats.PrefixCacheHits}/{stats.PrefixCacheQueries} prefix-cache tokens hit");
        if (numBlocks is not null)
            Assert.True(stats.Preemptions > 0, "a pool of a few blocks must preempt");
        Assert.Equal(stats.NumKVBlocks, stats.FreeKVBlocks);
    }

    /// vLLM's --max-model-len auto: the context is the longest sequence the KV pool holds whole, at most the model's
    /// (the fixture serves 256 positions); a request past it is refused as any over the context is.
    [Fact]
    public async Task AnAutoContextIsTheLongestSequenceThePoolHolds()
    {
        await using (var small = await StartAsync(configure: o => o with { MaxModelLen = EngineOptions.AutoMaxModelLen, NumGpuBlocksOverride = 6, BlockSize = 16 }))
        {
            Assert.Equal(96, small.Info.MaxModelLen);
            Assert.Equal(10, (await CollectAsync(small, Greedy([.. Enumerable.Range(5, 86)], 10))).Tokens().Length);
            var refused = await Assert.ThrowsAsync<InvalidRequestException>(() => CollectAsync(small, Greedy([.. Enumerable.Range(5, 90)], 10)));
            Assert.Contains("maximum context length is 96 tokens", refused.Message);
        }
        await using var roomy = await StartAsync(configure: o => o with { MaxModelLen = EngineOptions.AutoMaxModelLen });
        Assert.Equal(256, roomy.Info.MaxModelLen);
    }

    [Fact]
    public async Task StepPhasesAreTimedWithinTheWallClock()
    {
        await using var engine = await StartAsync();
        var before = engine.GetStats();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await CollectAsync(engine, Greedy([5, 6, 7, 8], 12));
        await WaitForIdleAsync(engine);
        var wall = clock.Elapsed;
        var after = engine.GetStats();
        var (schedule, execute, postprocess) = (after.SchedulingTime - before.SchedulingTime, after.ExecutionTime - before.ExecutionTime,
            after.PostprocessingTime - before.PostprocessingTime);
        output.WriteLine($"{after.Steps - before.Steps} steps: schedule {schedule.TotalMilliseconds:F2} ms, execute {execute.TotalMilliseconds:F2} ms, postprocess {postprocess.TotalMilliseconds:F2} ms");
        Assert.True(after.Steps - before.Steps >= 12, "one step per generated token at least");
        Assert.All(new[] { schedule, execute, postprocess }, phase => Assert.True(phase > TimeSpan.Zero));
        Assert.True(schedule + execute + postprocess <= wall, "the phases are parts of the steps, inside the request's wall time");
    }

    [Fact]
    public async Task ASecondRequestWithTheSamePromptComputesOnlyTheUncachedTail()
    {
        await using var engine = await StartAsync(configure: o => o with { BlockSize = 4 });
        var prompt = Enumerable.Range(0, 42).Select(i => (i * 37 + 11) % 500).ToArray();
        var first = await CollectAsync(engine, Greedy(prompt, 8));
        var before = engine.GetStats();
        var second = await CollectAsync(engine, Greedy(prompt, 8));
        var after = engine.GetStats();
        Assert.Equal(first.Tokens(), second.Tokens());
        Assert.Equal(0, first.Usage.CachedPromptTokens);
        Assert.Equal(40, second.Usage.CachedPromptTokens); // 10 full blocks of 4; the last 2 tokens are computed
        Assert.Equal(40, after.PrefixCacheHits - before.PrefixCacheHits);
    }

    [Fact]
    public async Task NGreaterThanOneForksSequencesThatShareThePrompt()
    {
        await using var engine = await StartAsync(configure: o => o with { BlockSize = 4 });
        var prompt = Fixtures.Reference("llama-gqa").Prompts[0];
        var request = Greedy(prompt.InputIds, 16) with { Sampling = new SamplingParams { N = 3, MaxTokens = 16, Seed = 5, IgnoreEos = true } };
        var completion = await CollectAsync(engine, request);
        var outputs = Enumerable.Range(0, 3).Select(i => completion.Tokens(i)).ToArray();
        Assert.All(outputs, tokens => Assert.Equal(16, tokens.Length));
        Assert.Equal(48, completion.Usage.CompletionTokens);
        Assert.Equal(prompt.InputIds.Length, completion.Usage.PromptTokens);
        Assert.NotEqual(outputs[0], outputs[1]);
        var again = await CollectAsync(engine, request with { RequestId = "again" });
        Assert.Equal(outputs[2], again.Tokens(2)); // seeded: reproducible
        await WaitForIdleAsync(engine);
    }

    [Fact]
    public async Task AStopStringSplitAcrossTokensStopsAndIsNotEmitted()
    {
        await using var engine = await StartAsync();
        var prompt = Fixtures.Reference("llama-gqa").Prompts[1];
        var full = await CollectAsync(engine, Greedy(prompt.InputIds, 16));
        var text = full.Text();
        var stop = text.Substring(text.Length / 2, 3);
        var stopped = await CollectAsync(engine, Greedy(prompt.InputIds, 16) with
        {
            Sampling = SamplingParams.Greedy with { MaxTokens = 16, IgnoreEos = true, Stop = [stop] },
        });
        Assert.Equal(FinishReason.Stop, stopped.Finish());
        Assert.Equal(new StopReason.String(stop), stopped.Events.Last().StopReason);
        Assert.Equal(text[..text.IndexOf(stop, StringComparison.Ordinal)], stopped.Text());
    }

    /// The stop token that ends an answer (stop_token_ids, or EOS) leaves its text out, special or not, unless
    /// include_stop_str_in_output (vLLM's detokenizer); its id is the answer's last.
    [Fact]
    public async Task AStopTokensTextIsLeftOutUnlessAskedFor()
    {
        await using var engine = await StartAsync();
        var prompt = Fixtures.Reference("llama-gqa").Prompts[1].InputIds;
        var free = (await CollectAsync(engine, Greedy(prompt, 8))).Tokens();
        var stop = free[4];
        var before = engine.Prompts.Decode(free[..Array.IndexOf(free, stop)], skipSpecialTokens: false);
        foreach (var include in new[] { false, true })
        {
            var stopped = await CollectAsync(engine, Greedy(prompt, 8) with
            {
                Sampling = SamplingParams.Greedy with { MaxTokens = 8, StopTokenIds = [stop], SkipSpecialTokens = false, IncludeStopStringInOutput = include },
            });
            Assert.Equal(stop, stopped.Tokens()[^1]);
            Assert.Equal(new StopReason.TokenId(stop), stopped.Events.Last().StopReason);
            var expected = include ? engine.Prompts.Decode(free[..(Array.IndexOf(free, stop) + 1)], skipSpecialTokens: false) : before;
            Assert.Equal(expected, stopped.Text());
        }
    }

    [Fact]
    public async Task InvalidRequestsAreRefusedBeforeAnyEvent()
    {
        await using var engine = await StartAsync();
        await Assert.ThrowsAsync<InvalidRequestException>(() => CollectAsync(engine, Greedy([], 4)));
        await Assert.ThrowsAsync<InvalidRequestException>(() => CollectAsync(engine, Greedy([1, 512], 4)));
        await Assert.ThrowsAsync<InvalidRequestException>(() => CollectAsync(engine, Greedy([1, 2], 1000)));
        var bad = Greedy([1, 2], 4) with { Sampling = SamplingParams.Greedy with { TopP = 0 } };
        var error = await Assert.ThrowsAsync<InvalidRequestException>(() => CollectAsync(engine, bad));
        Assert.Equal("top_p", error.Param);
        Assert.Equal(16, (await CollectAsync(engine, Greedy([1, 2], 16))).Tokens().Length);
    }

    static List<GenerationRequest> MixedWorkload(int count, int seed)
    {
        var random = new Random(seed);
        var fixturePrompts = Fixtures.Reference("llama-gqa").Prompts.Select(p => p.InputIds).ToArray();
        return Enumerable.Range(0, count).Select(i =>
        {
            var prompt = i < fixturePrompts.Length
                ? fixturePrompts[i]
                : Enumerable.Range(0, random.Next(1, 60)).Select(_ => random.Next(3, 512)).ToArray();
            return Greedy(prompt, random.Next(1, 24), $"r{i}");
        }).ToList();
    }
}
