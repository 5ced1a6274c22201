using Serving.Engine.Grammar;
using Serving.Engine.Sampling;
using Serving.Engine.Speculative;
using Serving.Engine.Tests.Support;
using Xunit.Abstractions;
using static Serving.Engine.Tests.Execution.EngineTestHelpers;

namespace Serving.Engine.Tests.Execution;

/// Speculative decoding by prompt lookup on real checkpoints: an engine that checks drafts must produce what one
/// without them produces (tokens, text, log-probabilities, finish reasons, usage), in fewer steps when text repeats.
public sealed class SpeculativeDecodingTests(ITestOutputHelper output)
{
    static readonly SpeculativeConfig Ngram = new() { NumSpeculativeTokens = 4, PromptLookupMin = 1, PromptLookupMax = 3 };
    static readonly SpeculativeConfig Suffix = new() { Method = SpeculativeMethod.Suffix, NumSpeculativeTokens = 4, SuffixMaxSpecFactor = 2 };

    /// A prompt followed by what greedy decoding made of it, twice: text that invites the model to repeat itself.
    static int[] Repeating(FixturePrompt prompt) => [.. prompt.InputIds, .. prompt.Greedy16, .. prompt.InputIds];

    /// Suffix decoding also drafts from the answers before (the later prompts repeat earlier ones' text).
    [Theory]
    [InlineData("llama-gqa", SpeculativeMethod.Ngram)]
    [InlineData("llama-sp-mqa", SpeculativeMethod.Ngram)]
    [InlineData("qwen3-gqa", SpeculativeMethod.Ngram)]
    [InlineData("llama-gqa", SpeculativeMethod.Suffix)]
    [InlineData("qwen3-gqa", SpeculativeMethod.Suffix)]
    public async Task GreedyDecodingGivesTheSameTokensInFewerSteps(string fixture, SpeculativeMethod method)
    {
        var prompts = Fixtures.Reference(fixture).Prompts.SelectMany(p => new[] { p.InputIds, Repeating(p) }).ToList();
        await using var plain = await StartAsync(fixture);
        await using var speculating = await StartAsync(fixture, o => o with { SpeculativeConfig = method == SpeculativeMethod.Suffix ? Suffix : Ngram });
        var expected = new List<Completion>();
        foreach (var prompt in prompts)
            expected.Add(await CollectAsync(plain, Greedy(prompt, 40)));
        var plainSteps = plain.GetStats().Steps;
        for (var i = 0; i < prompts.Count; i++)
        {
            var actual = await CollectAsync(speculating, Greedy(prompts[i], 40));
            Assert.Equal(expected[i].Tokens(), actual.Tokens());
            Assert.Equal(expected[i].Text(), actual.Text());
            Assert.Equal(expected[i].Usage, actual.Usage);
        }
        var stats = speculating.GetStats();
        output.WriteLine($"{fixture} ({method}): {plainSteps} steps without drafts, {stats.Steps} with; {stats.Speculation}");
        Assert.True(stats.Speculation.NumAcceptedTokens > 0, "no draft was kept");
        Assert.True(stats.Speculation.NumDraftTokens > stats.Speculation.NumAcceptedTokens, "no draft was refused");
        Assert.True(stats.Steps < plainSteps, "speculation took as many steps as decoding one token at a time");
        Assert.Equal(stats.GenerationTokens, plain.GetStats().GenerationTokens);
        await WaitForIdleAsync(speculating);
    }

    /// A seeded sampled request gives the text a server without drafts gives for its seed (a seeded token's draw
    /// depends on the seed, the sequence and the token's place only), alone and beside other requests; and every token
    /// it keeps, drafts included, has the log-probability the model gives it after the text before it: what a plain
    /// engine computes for the same text as a prompt.
    [Fact]
    public async Task SeededSampledTextsAreThoseDecodedWithoutDrafts()
    {
        const string fixture = "qwen3-gqa";
        var prompt = Repeating(Fixtures.Reference(fixture).Prompts[0]);
        await using var plain = await StartAsync(fixture);
        await using var speculating = await StartAsync(fixture, o => o with { SpeculativeConfig = Ngram });
        GenerationRequest Seeded(long seed, string id) => new()
        {
            RequestId = id, PromptTokenIds = prompt,
            Sampling = new SamplingParams { Temperature = 0.3f, Seed = seed, N = 2, MaxTokens = 40, IgnoreEos = true, Logprobs = 0 },
        };
        for (var seed = 1; seed <= 4; seed++)
        {
            var expected = await CollectAsync(plain, Seeded(seed, $"plain-{seed}"));
            // alone, then beside a greedy request that also speculates (other rows in the same steps)
            var alone = await CollectAsync(speculating, Seeded(seed, $"alone-{seed}"));
            var beside = await Task.WhenAll(CollectAsync(speculating, Seeded(seed, $"beside-{seed}")), CollectAsync(speculating, Greedy(prompt, 60)));
            for (var index = 0; index < 2; index++)
            {
                Assert.Equal(expected.Tokens(index), alone.Tokens(index));
                Assert.Equal(expected.Tokens(index), beside[0].Tokens(index));
            }
        }
        Assert.True(speculating.GetStats().Speculation.NumAcceptedTokens > 0, "no draft was kept");

        var sampled = await CollectAsync(speculating, Seeded(5, "teacher-forced"));
        for (var index = 0; index < 2; index++)
        {
            var tokens = sampled.Tokens(index);
            var logprobs = sampled.Events.Where(e => e.Index == index).SelectMany(e => e.Logprobs ?? []).ToArray();
            Assert.Equal(tokens.Length, logprobs.Length);
            var teacherForced = await CollectAsync(plain, Greedy([.. prompt, .. tokens], 1) with
            {
                Sampling = SamplingParams.Greedy with { MaxTokens = 1, IgnoreEos = true, PromptLogprobs = 0 },
            });
            var promptLogprobs = Assert.Single(teacherForced.Events, e => e.PromptLogprobs is not null).PromptLogprobs!;
            for (var i = 0; i < tokens.Length; i++)
            {
                var reference = promptLogprobs[prompt.Length + i]!;
                Assert.Equal(tokens[i], reference.TokenId);
                Assert.Equal(reference.Logprob, logprobs[i].Logprob, 1e-4f);
            }
        }
    }

    /// Stop strings, stop tokens and max_tokens that fall inside a run of kept drafts end the text where decoding one
    /// token at a time ends it; siblings (n = 2), a small token budget and a pool too small for everything at once
    /// (preemption) change nothing either.
    [Fact]
    public async Task StopsBudgetsSiblingsAndPreemptionEndTextsAsWithoutDrafts()
    {
        var reference = Fixtures.Reference("llama-gqa");
        var prompts = reference.Prompts.Select(Repeating).ToList();
        await using var plain = await StartAsync();
        var full = await CollectAsync(plain, Greedy(prompts[0], 40));
        var text = full.Text();
        var stop = text.Substring(text.Length / 2, 3);
        var stopToken = full.Tokens()[25];
        List<GenerationRequest> Requests() =>
        [
            .. prompts.Select((p, i) => Greedy(p, 23 + i)),
            Greedy(prompts[0], 40) with { Sampling = SamplingParams.Greedy with { MaxTokens = 40, IgnoreEos = true, Stop = [stop] } },
            Greedy(prompts[0], 40) with { Sampling = SamplingParams.Greedy with { MaxTokens = 40, IgnoreEos = true, Stop = [stop], IncludeStopStringInOutput = true } },
            Greedy(prompts[0], 40) with { Sampling = SamplingParams.Greedy with { MaxTokens = 40, StopTokenIds = [stopToken] } },
            Greedy(prompts[1], 30) with { Sampling = SamplingParams.Greedy with { MaxTokens = 30, IgnoreEos = true, N = 2 } },
        ];
        var expected = new List<Completion>();
        foreach (var request in Requests())
            expected.Add(await CollectAsync(plain, request));

        await using var constrained = await StartAsync(configure: o => o with
        {
            SpeculativeConfig = Ngram,
            MaxNumBatchedTokens = 6,
            NumGpuBlocksOverride = 24,
            BlockSize = 4,
        });
        var requests = Requests();
        var actual = await Task.WhenAll(requests.Select(r => CollectAsync(constrained, r)));
        for (var i = 0; i < requests.Count; i++)
        {
            for (var index = 0; index < requests[i].Sampling.N; index++)
            {
                Assert.Equal(expected[i].Tokens(index), actual[i].Tokens(index));
                Assert.Equal(expected[i].Text(index), actual[i].Text(index));
                Assert.Equal(expected[i].Finish(index), actual[i].Finish(index));
            }
            Assert.Equal((expected[i].Usage.PromptTokens, expected[i].Usage.CompletionTokens), (actual[i].Usage.PromptTokens, actual[i].Usage.CompletionTokens));
        }
        var stats = constrained.GetStats();
        output.WriteLine($"{stats.Preemptions} preemptions; {stats.Speculation}");
        Assert.True(stats.Preemptions > 0, "the pool was meant to be too small for all at once");
        Assert.True(stats.Speculation.NumAcceptedTokens > 0, "no draft was kept");
        await WaitForIdleAsync(constrained);
    }

    /// Six characters of text at each place where they first occur: a stop string that ends the text there.
    static IEnumerable<string> StopsAtEveryPlace(string text) =>
        Enumerable.Range(0, Math.Max(0, text.Length - 5)).Select(offset => text.Substring(offset, 6))
            .Where((stop, offset) => text.IndexOf(stop, StringComparison.Ordinal) == offset);

    /// A stop string at every place of repetitive texts (six characters, where they first occur): many end inside a run
    /// of drafts kept in one step, where the tokens after the stop must be dropped; each text, finish reason and token
    /// count is the plain one, each sequence ends once, and the engine counts as generated what usage reports.
    [Fact]
    public async Task AStopStringAnywhereInTheTextEndsItAsWithoutDrafts()
    {
        const string fixture = "qwen3-gqa";
        await using var plain = await StartAsync(fixture);
        await using var speculating = await StartAsync(fixture, o => o with { SpeculativeConfig = Ngram });
        foreach (var prompt in Fixtures.Reference(fixture).Prompts.Select(Repeating))
        {
            foreach (var stop in StopsAtEveryPlace((await CollectAsync(plain, Greedy(prompt, 40))).Text()))
            {
                // n = 2: the request stays live after its first sequence ends, so that sequence's later tokens reach the text side
                var request = Greedy(prompt, 40) with { Sampling = SamplingParams.Greedy with { MaxTokens = 40, IgnoreEos = true, N = 2, Stop = [stop] } };
                var generatedBefore = speculating.GetStats().GenerationTokens;
                var (expected, actual) = (await CollectAsync(plain, request), await CollectAsync(speculating, request with { RequestId = "s" + request.RequestId }));
                // tokens appended after the stop in the same step are dropped from the counts too
                await WaitForIdleAsync(speculating);
                Assert.Equal(actual.Usage.CompletionTokens, speculating.GetStats().GenerationTokens - generatedBefore);
                for (var index = 0; index < 2; index++)
                {
                    Assert.Equal(expected.Text(index), actual.Text(index));
                    Assert.Equal(expected.Finish(index), actual.Finish(index));
                    Assert.Equal(expected.Tokens(index), actual.Tokens(index));
                    Assert.Single(actual.Events, e => e.Index == index && e.FinishReason is not null);
                }
                Assert.Equal(expected.Usage.CompletionTokens, actual.Usage.CompletionTokens);
            }
        }
        Assert.True(speculating.GetStats().Speculation.NumAcceptedTokens > 0, "no draft was kept");
        await WaitForIdleAsync(speculating);
    }

    /// One request alone appends per step the drafts it keeps and a token of its own: steps + kept = generated, or one
    /// more when its last step's stop string ended the text at a kept draft (the drafts after it, and the step's own
    /// token, are dropped and not counted).
    [Fact]
    public async Task KeptDraftsAfterAStopStringAreNotCounted()
    {
        const string fixture = "qwen3-gqa";
        await using var plain = await StartAsync(fixture);
        await using var speculating = await StartAsync(fixture, o => o with { SpeculativeConfig = Ngram });
        var failures = new List<string>();
        foreach (var prompt in Fixtures.Reference(fixture).Prompts.Select(Repeating))
        {
            foreach (var stop in StopsAtEveryPlace((await CollectAsync(plain, Greedy(prompt, 40))).Text()))
            {
                var before = speculating.GetStats();
                var actual = await CollectAsync(speculating, Greedy(prompt, 40) with { Sampling = SamplingParams.Greedy with { MaxTokens = 40, IgnoreEos = true, Stop = [stop] } });
                await WaitForIdleAsync(speculating);
                var after = speculating.GetStats();
                var (steps, kept, generated) = (after.Steps - before.Steps,
                    after.Speculation.NumAcceptedTokens - before.Speculation.NumAcceptedTokens, after.GenerationTokens - before.GenerationTokens);
                Assert.Equal(actual.Usage.CompletionTokens, generated);
                if (steps + kept != generated && steps + kept != generated + 1) failures.Add($"stop '{stop}': {steps} steps + {kept} kept for {generated} generated");
            }
        }
        Assert.Empty(failures);
        Assert.True(speculating.GetStats().Speculation.NumAcceptedTokens > 0, "no draft was kept");
    }

    /// Drafts checked by tensor-parallel ranks (CPU, in-process), and by a sequence that runs with a LoRA adapter beside
    /// base sequences: the tokens of decoding one at a time (the adapter's: its merged checkpoint's).
    [Fact]
    public async Task TensorParallelRanksAndLoraAdaptersCheckDraftsAlike()
    {
        var prompts = Fixtures.Reference("llama-gqa").Prompts.Select(Repeating).ToList();
        using var lora = LoraFixture.Create("llama-gqa", projections: ["q_proj", "v_proj", "down_proj"], seed: 3);
        await using var plain = await StartAsync();
        await using var merged = await StartAsync(configure: o => o with { Model = lora.Merged.Path });
        await using var withAdapter = await StartAsync(configure: o => o with
        {
            SpeculativeConfig = Ngram,
            LoraModules = [new Engine.Model.Lora.LoraAdapterSource("tuned", lora.Adapter.Path)],
        });
        await using var tensorParallel = await StartAsync(configure: o => o with { SpeculativeConfig = Ngram, TensorParallelSize = 2 });
        var baseTokens = await Task.WhenAll(prompts.Select(p => CollectAsync(plain, Greedy(p, 32))));
        var tunedTokens = await Task.WhenAll(prompts.Select(p => CollectAsync(merged, Greedy(p, 32))));
        // base and adapter sequences in the same steps
        var both = await Task.WhenAll(prompts.SelectMany(p => new[] { Greedy(p, 32), Greedy(p, 32) with { LoraAdapter = "tuned" } })
            .Select(r => CollectAsync(withAdapter, r)));
        var sharded = await Task.WhenAll(prompts.Select(p => CollectAsync(tensorParallel, Greedy(p, 32))));
        for (var i = 0; i < prompts.Count; i++)
        {
            Assert.Equal(baseTokens[i].Tokens(), both[2 * i].Tokens());
            Assert.Equal(tunedTokens[i].Tokens(), both[2 * i + 1].Tokens());
            Assert.Equal(baseTokens[i].Tokens(), sharded[i].Tokens());
        }
        Assert.True(withAdapter.GetStats().Speculation.NumAcceptedTokens > 0, "no draft was kept");
        Assert.True(tensorParallel.GetStats().Speculation.NumAcceptedTokens > 0, "no draft was kept");
        await WaitForIdleAsync(withAdapter);
    }

    /// disable_by_batch_size: no drafts while more sequences are running or waiting than that (three sequences of one
    /// request against 2); alone, a sequence speculates.
    [Fact]
    public async Task ABatchLargerThanDisableByBatchSizeBringsNoDrafts()
    {
        var prompt = Repeating(Fixtures.Reference("llama-gqa").Prompts[0]);
        await using var engine = await StartAsync(configure: o => o with { SpeculativeConfig = Ngram with { DisableByBatchSize = 2 } });
        var three = await CollectAsync(engine, Greedy(prompt, 30) with { Sampling = SamplingParams.Greedy with { MaxTokens = 30, IgnoreEos = true, N = 3 } });
        Assert.Equal(0, engine.GetStats().Speculation.NumDrafts);
        var alone = await CollectAsync(engine, Greedy(prompt, 30));
        Assert.True(engine.GetStats().Speculation.NumDrafts > 0);
        Assert.All(Enumerable.Range(0, 3), index => Assert.Equal(alone.Tokens(), three.Tokens(index)));
    }

    /// Structured outputs check drafts too: each draft row is masked by the grammar after the drafts before it, so a
    /// draft the grammar refuses is never kept, and the text is the one decoded one token at a time under the grammar.
    [Fact]
    public async Task StructuredOutputsKeepOnlyDraftsTheirGrammarAllows()
    {
        const string fixture = "qwen3-gqa";
        StructuredOutputsParams[] grammars =
        [
            new() { Regex = "[a-z ]{0,60}" },
            new() { Regex = "([^e]{1,5}e){0,12}" },
            new() { Json = """{"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "array", "items": {"type": "integer"}}}, "required": ["a", "b"]}""" },
            new() { JsonObject = true },
        ];
        await using var plain = await StartAsync(fixture);
        await using var speculating = await StartAsync(fixture, o => o with { SpeculativeConfig = Ngram });
        var cases = 0;
        foreach (var prompt in Fixtures.Reference(fixture).Prompts.Select(Repeating))
            foreach (var grammar in grammars)
            {
                var request = Greedy(prompt, 48) with { Sampling = SamplingParams.Greedy with { MaxTokens = 48, StructuredOutputs = grammar } };
                var (expected, actual) = (await CollectAsync(plain, request), await CollectAsync(speculating, request with { RequestId = "s" + request.RequestId }));
                Assert.Equal(expected.Tokens(), actual.Tokens());
                Assert.Equal(expected.Text(), actual.Text());
                Assert.Equal(expected.Finish(), actual.Finish());
                cases++;
            }
        var stats = speculating.GetStats().Speculation;
        output.WriteLine($"{cases} constrained requests; {stats}");
        Assert.True(stats.NumAcceptedTokens > 0, "no draft was kept");
        Assert.True(stats.NumDraftTokens > stats.NumAcceptedTokens, "no draft was refused");
    }

    /// Penalties, bad words and min_tokens read the output so far: a draft row's are the sequence's after the drafts
    /// before it, so these requests check drafts and answer as decoded one token at a time.
    [Fact]
    public async Task PenaltiesBadWordsAndMinTokensSeeTheDraftsBeforeTheirRow()
    {
        const string fixture = "qwen3-gqa";
        await using var plain = await StartAsync(fixture);
        await using var speculating = await StartAsync(fixture, o => o with { SpeculativeConfig = Ngram });
        foreach (var prompt in Fixtures.Reference(fixture).Prompts.Select(Repeating))
        {
            var free = await CollectAsync(plain, Greedy(prompt, 40));
            var (common, word) = (free.Tokens()[10], free.Text().Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "a");
            SamplingParams[] samplings =
            [
                SamplingParams.Greedy with { MaxTokens = 40, IgnoreEos = true, RepetitionPenalty = 1.3f },
                SamplingParams.Greedy with { MaxTokens = 40, IgnoreEos = true, FrequencyPenalty = 0.4f, PresencePenalty = 0.2f },
                SamplingParams.Greedy with { MaxTokens = 40, IgnoreEos = true, BadWords = [word, " " + word] },
                // the stop token is banned until the 20th token, and would stop the text at once after it
                SamplingParams.Greedy with { MaxTokens = 40, StopTokenIds = [common], MinTokens = 20 },
            ];
            foreach (var sampling in samplings)
            {
                var request = Greedy(prompt, 40) with { Sampling = sampling };
                var (expected, actual) = (await CollectAsync(plain, request), await CollectAsync(speculating, request with { RequestId = "s" + request.RequestId }));
                Assert.Equal(expected.Tokens(), actual.Tokens());
                Assert.Equal(expected.Finish(), actual.Finish());
            }
        }
        var stats = speculating.GetStats().Speculation;
        output.WriteLine(stats.ToString());
        Assert.True(stats.NumAcceptedTokens > 0, "no draft was kept");
    }

    /// One pair checks no drafts: min_tokens not yet reached under a structured output (whose end lifts min_tokens at
    /// the sequence's place, not at a draft row's); past min_tokens it speculates.
    [Fact]
    public async Task MinTokensUnderAGrammarWaitsForMinTokensBeforeDrafts()
    {
        var prompt = Repeating(Fixtures.Reference("qwen3-gqa").Prompts[0]);
        await using var engine = await StartAsync("qwen3-gqa", o => o with { SpeculativeConfig = Ngram });
        var grammar = new StructuredOutputsParams { Regex = "[a-z ]{0,60}" };
        await CollectAsync(engine, Greedy(prompt, 30) with { Sampling = SamplingParams.Greedy with { MaxTokens = 30, MinTokens = 30, IgnoreEos = true, StructuredOutputs = grammar } });
        Assert.Equal(0, engine.GetStats().Speculation.NumDrafts);
        await CollectAsync(engine, Greedy(prompt, 30) with { Sampling = SamplingParams.Greedy with { MaxTokens = 30, IgnoreEos = true, StructuredOutputs = grammar } });
        Assert.True(engine.GetStats().Speculation.NumDrafts > 0);
    }
}

/// The same on CUDA, where decode steps without drafts replay CUDA graphs and steps that check drafts run eagerly
/// through the fused prefill path: the greedy tokens of every fixture prompt (and of it repeated) stay the same.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class SpeculativeDecodingGpuTests(ITestOutputHelper output)
{
    public static TheoryData<string> Models => new(Fixtures.Models);

    [GpuTheory, MemberData(nameof(Models))]
    public async Task GreedyTokensOnCudaAreTheSameWithDrafts(string fixture)
    {
        var prompts = Fixtures.Reference(fixture).Prompts
            .SelectMany(p => new[] { p.InputIds, [.. p.InputIds, .. p.Greedy16, .. p.InputIds] }).ToList();
        EngineOptions OnCuda(EngineOptions o) => o with { Device = "cuda", NumGpuBlocksOverride = 256 };
        await using var plain = await StartAsync(fixture, OnCuda);
        await using var speculating = await StartAsync(fixture, o => OnCuda(o) with
        {
            SpeculativeConfig = new SpeculativeConfig { NumSpeculativeTokens = 4, PromptLookupMin = 1, PromptLookupMax = 3 },
        });
        var requests = prompts.Select((p, i) => Greedy(p, 40, $"r{i}")).ToList();
        var expected = await Task.WhenAll(requests.Select(r => CollectAsync(plain, r)));
        var actual = await Task.WhenAll(requests.Select(r => CollectAsync(speculating, r)));
        for (var i = 0; i < requests.Count; i++)
            Assert.Equal(expected[i].Tokens(), actual[i].Tokens());
        output.WriteLine($"{fixture}: {plain.GetStats().Steps} steps without drafts, {speculating.GetStats().Steps} with; {speculating.GetStats().Speculation}");
        Assert.True(speculating.GetStats().Speculation.NumAcceptedTokens > 0, "no draft was kept");
    }
}
