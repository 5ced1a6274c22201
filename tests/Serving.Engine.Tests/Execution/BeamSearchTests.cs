using Serving.Engine.Model;
using Serving.Engine.Sampling;
using Serving.Engine.Tests.Support;
using static Serving.Engine.Tests.Execution.EngineTestHelpers;

namespace Serving.Engine.Tests.Execution;

/// Beam search (SamplingParams.BeamSearch) through the engine: one beam is greedy decoding (transformers' greedy
/// tokens); wider searches keep what a textbook search over the whole vocabulary keeps, with the model's log-probabilities
/// computed here by a plain forward of each candidate; stop tokens finish beams; a search frees its blocks when cancelled,
/// finishes through a drain, and refuses what it cannot honour.
public sealed class BeamSearchTests
{
    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen3-gqa")]
    public async Task OneBeamIsGreedyDecoding(string fixture)
    {
        await using var engine = await StartAsync(fixture);
        foreach (var prompt in Fixtures.Reference(fixture).Prompts)
        {
            var completion = await CollectAsync(engine, Search(prompt.InputIds, beams: 1, maxTokens: 16));
            Assert.Equal(prompt.Greedy16, completion.Tokens());
            Assert.Equal(FinishReason.Length, completion.Finish());
        }
    }

    [Theory]
    [InlineData("llama-gqa", 3, 1.0)]
    [InlineData("llama-gqa", 2, 0.0)]
    [InlineData("qwen3-gqa", 4, 2.0)]
    public async Task TheBeamsAreThoseAWholeVocabularySearchKeeps(string fixture, int beams, double lengthPenalty)
    {
        var prompt = Fixtures.Reference(fixture).Prompts[0].InputIds;
        var expected = ReferenceSearch(fixture, prompt, beams, steps: 4, lengthPenalty);
        await using var engine = await StartAsync(fixture);
        var completion = await CollectAsync(engine, Search(prompt, beams, maxTokens: 4, lengthPenalty: (float)lengthPenalty));
        Assert.Equal(beams, completion.Events.Count);
        for (var i = 0; i < beams; i++)
        {
            Assert.Equal(expected[i].Tokens, completion.Tokens(i));
            var logprobs = completion.Events.Single(e => e.Index == i).Logprobs!;
            Assert.Equal(expected[i].Sum, logprobs.Sum(l => (double)l.Logprob), 1e-3);
            Assert.Equal(engine.Prompts.Decode(expected[i].Tokens, skipSpecialTokens: true), completion.Text(i));
        }
        Assert.Equal(new RequestUsage(prompt.Length, 4 * beams, 0), completion.Usage);
        await WaitForIdleAsync(engine);
    }

    [Fact]
    public async Task AStopTokenFinishesTheBeamsThatReachIt()
    {
        var prompt = Fixtures.Reference("llama-gqa").Prompts[0].InputIds;
        await using var engine = await StartAsync();
        var free = await CollectAsync(engine, Search(prompt, beams: 3, maxTokens: 4, lengthPenalty: 0));
        var (first, stop) = (free.Tokens(0)[0], free.Tokens(0)[1]);

        var request = Search(prompt, beams: 3, maxTokens: 4, lengthPenalty: 0);
        var stopped = await CollectAsync(engine, request with { Sampling = request.Sampling with { StopTokenIds = [stop] } });
        var ended = Enumerable.Range(0, 3).Where(i => stopped.Tokens(i).SequenceEqual([first, stop])).ToArray();
        var index = Assert.Single(ended);
        Assert.Equal(FinishReason.Stop, stopped.Finish(index));
        Assert.Equal(new StopReason.TokenId(stop), stopped.Events.Single(e => e.Index == index).StopReason);
        Assert.Equal(engine.Prompts.Decode([first], skipSpecialTokens: true), stopped.Text(index));
        // a beam that reaches the stop token ends there
        Assert.All(Enumerable.Range(0, 3), i =>
            Assert.True(!stopped.Tokens(i).Contains(stop) || (stopped.Tokens(i)[^1] == stop && stopped.Finish(i) == FinishReason.Stop)));
    }

    [Fact]
    public async Task CancellingASearchFreesItsBlocksAndTheEngineServesOn()
    {
        var prompt = Fixtures.Reference("llama-gqa").Prompts[1].InputIds;
        await using var engine = await StartAsync();
        using var cancel = new CancellationTokenSource();
        var search = CollectAsync(engine, Search(prompt, beams: 4, maxTokens: 200), cancel.Token);
        await WaitUntilAsync(engine, stats => stats.Steps >= 3, "the search's third step");
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => search);
        await WaitForIdleAsync(engine);
        Assert.Equal(3, (await CollectAsync(engine, Greedy(prompt, 3))).Tokens().Length);
    }

    [Fact]
    public async Task ASearchUnderWayFinishesThroughADrain()
    {
        var prompt = Fixtures.Reference("llama-gqa").Prompts[1].InputIds;
        await using var engine = await StartAsync();
        var search = CollectAsync(engine, Search(prompt, beams: 3, maxTokens: 30));
        await WaitUntilAsync(engine, stats => stats.Steps >= 2, "the search's second step");
        await engine.DrainAsync(TimeSpan.FromSeconds(60), CancellationToken.None);
        var completion = await search;
        Assert.Equal(3, completion.Events.Count);
        Assert.All(Enumerable.Range(0, 3), i => Assert.Equal(FinishReason.Length, completion.Finish(i)));
        Assert.All(Enumerable.Range(0, 3), i => Assert.Equal(30, completion.Tokens(i).Length));
    }

    [Fact]
    public async Task ADrainThatRunsOutOfTimeEndsASearchAsAborted()
    {
        var prompt = Fixtures.Reference("llama-gqa").Prompts[1].InputIds;
        await using var engine = await StartAsync();
        var search = CollectAsync(engine, Search(prompt, beams: 4, maxTokens: 200));
        await WaitUntilAsync(engine, stats => stats.Steps >= 3, "the search's third step");
        await engine.DrainAsync(TimeSpan.FromMilliseconds(50), CancellationToken.None);
        var completion = await search;
        Assert.Equal(4, completion.Events.Count);
        Assert.All(Enumerable.Range(0, 4), i => Assert.Equal(FinishReason.Abort, completion.Finish(i)));
        Assert.All(Enumerable.Range(0, 4), i => Assert.InRange(completion.Tokens(i).Length, 1, 199));
    }

    [Fact]
    public async Task ASearchUnderWayIsNeverRefusedForAFullQueue()
    {
        // the queue's bound is met when the search starts; its steps' requests are not refused for it afterwards, however
        // many others wait
        var prompt = Fixtures.Reference("llama-gqa").Prompts[1].InputIds;
        await using var engine = await StartAsync(configure: o => o with { MaxNumQueuedRequests = 4 });
        var search = CollectAsync(engine, Search(prompt, beams: 4, maxTokens: 30));
        using var stop = new CancellationTokenSource();
        var refused = 0;
        var others = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try { await CollectAsync(engine, Greedy(prompt, 2)); }
                catch (QueueFullException) { refused++; }
            }
        });
        var completion = await search;
        stop.Cancel();
        await others;
        Assert.Equal(4, completion.Events.Count);
        Assert.All(Enumerable.Range(0, 4), i => Assert.Equal(30, completion.Tokens(i).Length));

        // a search that cannot have its beams queued is refused before it starts: one sequence runs, three wait
        await using var busy = await StartAsync(configure: o => o with { MaxNumQueuedRequests = 4, MaxNumSeqs = 1 });
        var waiting = Enumerable.Range(0, 4).Select(i => CollectAsync(busy, Greedy(prompt, 50, $"w{i}"))).ToList();
        await WaitUntilAsync(busy, stats => stats.RunningRequests == 1 && stats.WaitingRequests == 3, "one running, three waiting");
        await Assert.ThrowsAsync<QueueFullException>(() => CollectAsync(busy, Search(prompt, beams: 2, maxTokens: 2)));
        await Task.WhenAll(waiting);
    }

    [Theory]
    [InlineData("n")]
    [InlineData("stop")]
    [InlineData("repetition_penalty")]
    [InlineData("logit_bias")]
    [InlineData("min_tokens")]
    [InlineData("length_penalty")]
    public async Task WhatASearchCannotHonourIsRefused(string param)
    {
        await using var engine = await StartAsync();
        var request = Search([1, 5, 9], beams: 2, maxTokens: 4);
        var sampling = request.Sampling;
        sampling = param switch
        {
            "n" => sampling with { N = BeamSearchParams.MaxBeams + 1 },
            "stop" => sampling with { Stop = ["."] },
            "repetition_penalty" => sampling with { RepetitionPenalty = 1.2f },
            "logit_bias" => sampling with { LogitBias = new Dictionary<int, float> { [3] = 5 } },
            "min_tokens" => sampling with { MinTokens = 2 },
            _ => sampling with { BeamSearch = new BeamSearchParams { LengthPenalty = float.NaN } },
        };
        var error = await Assert.ThrowsAsync<InvalidRequestException>(() => CollectAsync(engine, request with { Sampling = sampling }));
        Assert.Equal(param, error.Param);
        await WaitForIdleAsync(engine);
    }

    static GenerationRequest Search(IReadOnlyList<int> prompt, int beams, int maxTokens, float lengthPenalty = 1f) =>
        Greedy(prompt, maxTokens) with
        {
            Sampling = SamplingParams.Greedy with
            {
                N = beams,
                MaxTokens = maxTokens,
                IgnoreEos = true,
                Logprobs = 0,
                BeamSearch = new BeamSearchParams { LengthPenalty = lengthPenalty },
            },
        };

    /// The textbook search: every beam extended by every token of the vocabulary, the best `beams` sums kept; at the end
    /// ranked by sum / (prompt + generated)^lengthPenalty. Each candidate's next-token log-probabilities come from a
    /// forward of the whole sequence.
    static (int[] Tokens, double Sum)[] ReferenceSearch(string fixture, int[] prompt, int beams, int steps, double lengthPenalty)
    {
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "float32");
        using var cache = model.CreateKVCache(numBlocks: 16, blockSize: 16);
        List<(int[] Tokens, double Sum)> live = [([], 0.0)];
        for (var step = 0; step < steps; step++)
        {
            var extensions = new List<(int[] Tokens, double Sum)>();
            foreach (var (tokens, sum) in live)
            {
                var runner = new PagedRunner(model, cache);
                var sequence = runner.Add([.. prompt, .. tokens]);
                var logits = runner.Step([(sequence, prompt.Length + tokens.Length)])[0];
                var logSum = LogSumExp(logits);
                extensions.AddRange(logits.Select((logit, id) => ((int[])[.. tokens, id], sum + logit - logSum)));
            }
            live = [.. extensions.OrderByDescending(e => e.Sum).Take(beams)];
        }
        return [.. live.OrderByDescending(b => b.Sum / Math.Pow(prompt.Length + b.Tokens.Length, lengthPenalty))];
    }

    static double LogSumExp(float[] logits)
    {
        var max = logits.Max();
        return max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
    }
}
